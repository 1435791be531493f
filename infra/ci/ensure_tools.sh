#!/usr/bin/env bash
# Install Debian's load generators (wrk, hey) for bench.serving and Prometheus with its
# Pushgateway (and promtool) for the metrics tests and the alert-rule check, when missing.
# Idempotent: does nothing when every command is on PATH.
set -euo pipefail

declare -A PACKAGE_OF=([wrk]=wrk [hey]=hey [prometheus]=prometheus [promtool]=prometheus
  [prometheus-pushgateway]=prometheus-pushgateway)
missing=()
for cmd in "${!PACKAGE_OF[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${PACKAGE_OF[$cmd]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
echo "Installing Debian's ${packages}for the benchmarks and the metrics tests"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $packages >/dev/null
# Debian's prometheus package starts its own services where systemd runs; the tests start
# their own servers on free loopback ports, so stop any the install started.
for svc in prometheus prometheus-pushgateway prometheus-node-exporter; do
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl stop "$svc" 2>/dev/null || true; fi
done
for cmd in "${!PACKAGE_OF[@]}"; do
  command -v "$cmd" >/dev/null || { echo "$cmd did not install" >&2; exit 1; }
done
