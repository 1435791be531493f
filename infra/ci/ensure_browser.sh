#!/usr/bin/env bash
# Install Debian's chromium and chromium-driver (the browser tests drive them headless) when
# either is missing. Idempotent: does nothing when both are on PATH.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
echo "Installing Debian's chromium and chromium-driver for the browser tests"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
command -v chromedriver >/dev/null || { echo "chromium-driver did not install" >&2; exit 1; }
