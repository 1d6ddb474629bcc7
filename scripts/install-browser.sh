#!/usr/bin/env bash
# Headless Chromium + ChromeDriver for the report's browser tests, from Debian's packages (a browser
# build downloaded at test time would not reach this network). Idempotent: nothing to do once both exist.
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    exit 0
fi
SUDO=""
if [[ "$(id -u)" != 0 ]]; then
    SUDO="sudo"
fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium chromium-driver
