#!/usr/bin/env bash
# Spark GPU discovery script: prints the GPUs this executor (or worker) may use as
#   {"name":"gpu","addresses":["0","1"]}
# Spark runs it at executor start (spark.executor.resource.gpu.discoveryScript) and hands
# the addresses to tasks (TaskContext.resources()["gpu"]); batchscore scores on the one
# its task was given. It assumes the container/VM sees only the GPUs allocated to it.
set -euo pipefail

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "gpu_discovery.sh: nvidia-smi not found; is the NVIDIA driver installed on this node?" >&2
  exit 1
fi

indices=$(nvidia-smi --query-gpu=index --format=csv,noheader)
addresses=""
for index in $indices; do
  addresses="${addresses:+$addresses,}\"${index//[^0-9]/}\""
done
printf '{"name":"gpu","addresses":[%s]}\n' "$addresses"
