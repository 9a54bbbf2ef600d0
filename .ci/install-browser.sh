#!/usr/bin/env bash
# Headless Chromium and its driver for the dashboard's browser test (tests/dashboard), from
# Debian's packages. Does nothing when both are already installed; needs root (or sudo) otherwise.
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q chromium chromium-driver
