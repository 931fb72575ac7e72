# Footfall image: `docker build -t footfall .` then
#   docker run -p 8080:8080 -p 9108:9108 -v footfall-data:/data \
#     -e FOOTFALL_UPSTREAM=http://site:80 footfall
# The default command is `footfall run`: the proxy and all collectors in one
# process, what a single host needs. Any other command replaces it, e.g.
#   docker run ... footfall proxy --upstream http://site:80 --redis-url redis://redis:6379/0
#   docker run ... footfall collect all --redis-url redis://redis:6379/0 --admin-listen 0.0.0.0:9109
# Ports:   8080 the proxy (FOOTFALL_LISTEN), 9108 admin: /metrics /healthz /readyz,
#          dashboard and query API (FOOTFALL_ADMIN_LISTEN); `collect` serves 9109.
# Volume:  /data (FOOTFALL_DATA_DIR): the embedded Redis, the event spool, the
#          analytics store; keep it on a persistent volume.
# The install steps are the README's (tests/test_packaging.py checks they match).
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY proxy ./proxy
COPY collectors ./collectors
COPY config ./config
RUN python3 -m venv .venv && .venv/bin/pip install -e .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app footfall \
    && mkdir /data && chown footfall /data
WORKDIR /app
COPY --from=build /app /app
USER footfall
ENV FOOTFALL_DATA_DIR=/data \
    FOOTFALL_LISTEN=0.0.0.0:8080 \
    FOOTFALL_ADMIN_LISTEN=0.0.0.0:9108 \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 8080 9108
# Ready = listening, upstream pool open, and Redis or the spool can take events.
# The slim image has no curl: the venv's Python asks /readyz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/app/.venv/bin/python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9108/readyz', timeout=2).status != 200)"]
# docker run -e FOOTFALL_UPSTREAM=http://site:80 -e FOOTFALL_ADMIN_TOKEN=<16+ chars> -p 8080:8080 -p 9108:9108 footfall
# (the admin listener is on 0.0.0.0 here, so Footfall refuses to start without a token)
ENTRYPOINT ["/app/.venv/bin/footfall"]
CMD ["run"]
