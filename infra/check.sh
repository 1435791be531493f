#!/usr/bin/env bash
# `make infra-check`: offline validation of the deployment files; no cluster, no image build.
#   bash infra/check.sh [VENV_BIN]      (VENV_BIN: default .venv/bin)
# 1. kubectl (Debian's kubernetes-client when missing) renders infra/k8s/overlays/{cpu,gpu};
#    validate_manifests.py checks every object, the pod templates and the Airflow values.
# 2. promtool check rules on infra/prometheus/*.rules.yml, when there are any.
# 3. hadolint on infra/docker/Dockerfile{,.gpu}.
# 4. The Dockerfiles' install scripts in --check mode (bash -n, apt-get -s, uv pip compile).
# Runs every step and fails at the end if one failed; needs PyPI for step 4.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-$root/.venv/bin}
failed=()

step() {  # step NAME COMMAND...: run it, remember a failure
  local name=$1
  shift
  echo "== infra-check: $name"
  if ! "$@"; then
    echo "FAILED: $name" >&2
    failed+=("$name")
  fi
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2
    return 1
  fi
}

ensure_apt_package() {  # ensure_apt_package COMMAND PACKAGE...: the first package apt knows
  local command=$1 package
  shift
  command -v "$command" >/dev/null && return 0
  as_root apt-get update -qq || return 1
  for package in "$@"; do
    if apt-cache policy "$package" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
      echo "installing $package for $command"
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" && return 0
    fi
  done
  echo "no apt package provides $command (tried: $*)" >&2
  return 1
}

manifests() {
  # Debian 12 has no `kubectl` package; its kubectl is in kubernetes-client (1.20, whose
  # kustomize v2 the kustomizations are written for).
  ensure_apt_package kubectl kubectl kubernetes-client || return 1
  kubectl version --client 2>/dev/null | head -n 1
  "$bin/python" "$root/infra/validate_manifests.py" --repo "$root" --kubectl kubectl
}

prometheus_rules() {
  local rules=("$root"/infra/prometheus/*.rules.yml)
  if [ ! -e "${rules[0]}" ]; then
    echo "skipped: no infra/prometheus/*.rules.yml"
    return 0
  fi
  ensure_apt_package promtool prometheus || return 1
  promtool check rules "${rules[@]}"
}

dockerfiles() {
  "$bin/hadolint" "$root/infra/docker/Dockerfile" "$root/infra/docker/Dockerfile.gpu" && echo "ok: hadolint"
}

install_scripts() {
  local status=0
  local script
  for script in "$root"/infra/*.sh "$root"/infra/ci/*.sh "$root"/infra/spark/*.sh; do
    bash -n "$script" || status=1
  done
  [ "$status" = 0 ] && echo "ok: bash -n infra/*.sh infra/ci/*.sh infra/spark/*.sh"
  bash "$root/infra/docker/install_system.sh" --check || status=1
  bash "$root/infra/docker/install_system.sh" --check --gpu || status=1
  UV="$bin/uv" PYTHON="$bin/python" bash "$root/infra/docker/install_python.sh" --check || status=1
  UV="$bin/uv" PYTHON="$bin/python" bash "$root/infra/docker/install_python.sh" --check --gpu || status=1
  return "$status"
}

step "Kubernetes manifests" manifests
step "Prometheus rules" prometheus_rules
step "Dockerfiles (hadolint)" dockerfiles
step "image install scripts (--check)" install_scripts

if [ ${#failed[@]} -gt 0 ]; then
  echo "infra-check failed: ${failed[*]}" >&2
  exit 1
fi
echo "infra-check: ok"
