"""Where a request goes: the reverse proxy's hot path.

guard.py (header-phase limits) → forward.py (refuse, route, forward, stream back,
hand an Exchange snapshot to the publisher) → h1client.py / h1connection.py (the
upstream HTTP/1.1 pool and connections); watchdog.py enforces the deadlines;
server.py runs one worker's listener. Pure helpers: headers.py (hygiene, client IP,
traceparent), upstreams.py (host map).
"""
