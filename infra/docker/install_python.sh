#!/usr/bin/env bash
# batchscore's Python environment for the images: a venv with the pinned requirements and the
# project itself (editable, so REPO_ROOT stays the source tree the image ships).
#
#   install_python.sh install --venv /opt/venv --project /opt/batchscore [--gpu]
#   install_python.sh --check [--gpu]    # CI: resolve the image's requirement set for Linux
#                                        # x86_64 / Python 3.11 with `uv pip compile` (no install)
#                                        # and fail unless every resolved package is pinned
#
# CPU: /requirements.txt + requirements-image.txt. GPU: the same without onnxruntime (its CPU
# build ships the same import package as onnxruntime-gpu) + requirements-gpu.txt.
# UV (the uv binary) and PYTHON (the interpreter) may be set; --check needs PyPI.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
UV_VERSION=0.13.9
PLATFORM=x86_64-manylinux_2_28
LOWEST_PYTHON=3.11.0  # Ubuntu 22.04's python3.11; the CPU image's 3.11.x is newer
# Wheels only, so the builder needs no compiler; pyspark is published as an sdist only (pure
# Python, built with setuptools). A new pin without a Linux wheel fails --check, not the build.
BINARY_FLAGS=(--only-binary :all: --no-binary pyspark)

requirement_files() {  # requirement_files <cpu|gpu> <scratch dir>: one path a line
  if [ "$1" = gpu ]; then
    grep -v '^onnxruntime==' "$root/requirements.txt" >"$2/requirements-no-onnxruntime.txt"
    echo "$2/requirements-no-onnxruntime.txt"
  else
    echo "$root/requirements.txt"
  fi
  echo "$here/requirements-image.txt"
  [ "$1" = gpu ] && echo "$here/requirements-gpu.txt"
  return 0
}

as_r_flags() {  # -r file for each line of stdin
  while read -r file; do printf -- '-r\n%s\n' "$file"; done
}

install() {  # install <venv> <project> <flavour>
  local venv=$1 project=$2 flavour=$3 scratch python=${PYTHON:-python3.11}
  scratch=$(mktemp -d)
  local flags=()
  mapfile -t flags < <(requirement_files "$flavour" "$scratch" | as_r_flags)
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --no-cache-dir "uv==$UV_VERSION"
  "$venv/bin/uv" pip install --python "$venv/bin/python" --no-cache --no-deps "${BINARY_FLAGS[@]}" "${flags[@]}"
  "$venv/bin/uv" pip install --python "$venv/bin/python" --no-cache --no-deps -e "$project"
  "$venv/bin/uv" pip check --python "$venv/bin/python"
  "$venv/bin/python" - <<'PY'
import pathlib, pyspark
jars = pathlib.Path(pyspark.__file__).parent / "jars"
wanted = "spark-core_2.13-" + pyspark.__version__
assert any(j.name.startswith(wanted) for j in jars.iterdir()), "pyspark Python files do not match its jars"
PY
  "$venv/bin/python" -m pip uninstall --yes uv
  rm -rf "$scratch"
}

check() {  # check <flavour>
  local flavour=$1 scratch uv=${UV:-uv} status=0
  scratch=$(mktemp -d)
  local files=()
  mapfile -t files < <(requirement_files "$flavour" "$scratch")
  if ! "$uv" pip compile --quiet --no-header --no-annotate "${BINARY_FLAGS[@]}" \
    --python-version "$LOWEST_PYTHON" --python-platform "$PLATFORM" \
    "${files[@]}" -o "$scratch/resolved.txt" 2>"$scratch/uv.err"; then
    echo "install_python.sh: the $flavour image's requirements do not resolve (wheels only, $PLATFORM, Python $LOWEST_PYTHON):" >&2
    cat "$scratch/uv.err" >&2
    rm -rf "$scratch"
    return 1
  fi
  echo "ok: uv pip compile ($flavour, wheels only, $PLATFORM, Python $LOWEST_PYTHON)"
  "${PYTHON:-python3}" "$here/lock_check.py" --compiled "$scratch/resolved.txt" "${files[@]}" || status=$?
  rm -rf "$scratch"
  return "$status"
}

main() {
  local mode=${1:-} venv="" project="" flavour=cpu
  shift || true
  while [ $# -gt 0 ]; do
    case "$1" in
      --venv) venv=$2; shift 2 ;;
      --project) project=$2; shift 2 ;;
      --gpu) flavour=gpu; shift ;;
      *) echo "install_python.sh: unknown argument $1" >&2; return 2 ;;
    esac
  done
  case "$mode" in
    install)
      [ -n "$venv" ] && [ -n "$project" ] || { echo "install needs --venv and --project" >&2; return 2; }
      install "$venv" "$project" "$flavour"
      ;;
    --check) check "$flavour" ;;
    *) echo "usage: install_python.sh install --venv DIR --project DIR [--gpu] | --check [--gpu]" >&2; return 2 ;;
  esac
}

main "$@"
