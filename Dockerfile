# Footfall image: `docker build -t footfall .` then
#   docker run -p 8080:8080 -p 9108:9108 -v footfall-data:/data footfall --upstream http://site:80
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
ENTRYPOINT ["/app/.venv/bin/footfall", "proxy"]
