#!/usr/bin/env bash
# Fails early, with the fix, when the interpreter or Java that batchscore needs is missing.
set -euo pipefail
python=${1:-python3}
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)
if [ "$version" != "3.11" ]; then
  echo "batchscore needs Python 3.11 (found '${version:-none}' for $python); run: make PYTHON=python3.11 ..." >&2
  exit 1
fi
if ! command -v java >/dev/null 2>&1 && [ -z "${JAVA_HOME:-}" ]; then
  echo "Spark needs Java 17+; install it (Debian/Ubuntu: apt-get install openjdk-17-jre-headless)" >&2
  exit 1
fi
