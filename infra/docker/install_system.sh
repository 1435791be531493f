#!/usr/bin/env bash
# Operating-system packages for batchscore's images, one list per image stage.
#
#   install_system.sh build   [--gpu]   # builder stage: what pip and uv need (wheels only)
#   install_system.sh runtime [--gpu]   # final stage: Java 17, tini, procps; no build tools
#   install_system.sh --check [--gpu]   # CI: bash -n on infra/docker/*.sh and, on a host of
#                                       # the image's distribution, apt-get -s of each list
#
# CPU images are Debian 12 (python:3.11-slim-bookworm: Python comes with the image); the GPU
# image is Ubuntu 22.04 (nvidia/cuda ... ubuntu22.04: Python 3.11 from Ubuntu's archive).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

packages() {  # packages <stage> <cpu|gpu>
  local stage=$1 flavour=$2 python=""
  [ "$flavour" = gpu ] && python="python3.11 python3.11-venv"
  if [ "$stage" = build ]; then
    echo "ca-certificates${python:+ $python}"
  else
    echo "ca-certificates openjdk-17-jre-headless tini procps libgomp1${python:+ $python}"
  fi
}

target_distro() {  # the /etc/os-release ID:VERSION_CODENAME the image stage runs on
  if [ "$1" = gpu ]; then echo "ubuntu:jammy"; else echo "debian:bookworm"; fi
}

host_distro() {
  # shellcheck disable=SC1091
  (. /etc/os-release && echo "${ID}:${VERSION_CODENAME:-}")
}

link_java_home() {
  # One JAVA_HOME for every architecture and distribution: /usr/lib/jvm/java-17.
  local java
  java=$(readlink -f "$(command -v java)")
  ln -sfn "$(dirname "$(dirname "$java")")" /usr/lib/jvm/java-17
  /usr/lib/jvm/java-17/bin/java -version
}

install() {  # install <stage> <flavour>
  local list
  list=$(packages "$1" "$2")
  export DEBIAN_FRONTEND=noninteractive
  # openjdk's postinst needs the man1 directory that slim images delete.
  mkdir -p /usr/share/man/man1
  apt-get update
  # shellcheck disable=SC2086
  apt-get install -y --no-install-recommends $list
  apt-get clean
  rm -rf /var/lib/apt/lists/*
  if [ "$1" = runtime ]; then link_java_home; fi
}

check() {  # check <flavour>: syntax of every script here, then the package lists when we can
  local flavour=$1 script stage list
  for script in "$here"/*.sh; do
    bash -n "$script"
    echo "ok: bash -n $(basename "$script")"
  done
  if [ "$(host_distro)" != "$(target_distro "$flavour")" ]; then
    echo "skipped: apt-get -s for the $flavour image ($(target_distro "$flavour")); this host is $(host_distro)"
    return 0
  fi
  for stage in build runtime; do
    list=$(packages "$stage" "$flavour")
    # shellcheck disable=SC2086
    if ! apt-get install -s --no-install-recommends $list >/dev/null 2>"${TMPDIR:-/tmp}/apt-check.err"; then
      echo "install_system.sh: the $flavour $stage packages do not resolve here: $list" >&2
      cat "${TMPDIR:-/tmp}/apt-check.err" >&2
      echo "(an empty apt list gives this too: run apt-get update first)" >&2
      return 1
    fi
    echo "ok: apt-get -s $flavour $stage: $list"
  done
}

main() {
  local mode=${1:-} flavour=cpu
  [ "${2:-}" = "--gpu" ] && flavour=gpu
  case "$mode" in
    build | runtime) install "$mode" "$flavour" ;;
    --check) check "$flavour" ;;
    *)
      echo "usage: install_system.sh build|runtime|--check [--gpu]" >&2
      return 2
      ;;
  esac
}

main "$@"
