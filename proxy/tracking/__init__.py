"""Where an event is made, off the response path (in the publisher's flush task).

pipeline.py (snapshot → event → metrics → JSON) with event.py, privacy.py, routes.py,
enrich/ (user agent, bots, referrer, campaign, channel, geo) and cookieless.py;
identity.py (first-party cookies, consent) is the one piece the hot path calls.
"""
