"""`make gpu-check`: batchscore's GPU path on a machine with an NVIDIA GPU, nothing else.

    python infra/gpu_check.py [--rows 1000000 10000000] [--out bench/results/gpu_check.json]

No Java, Spark or services. Fails fast, before importing anything heavy, when there is no
nvidia-smi or it sees no GPU; then needs xgboost's CUDA build and CuPy (the GPU image has
both). Runs the GPU tests (GPU_TESTS, none may be skipped) and `python -m bench.scoring
--device cuda` at each size, and writes one JSON file: the device, versions, test counts and
rows/s from device-resident input and from host Arrow batches.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "results" / "gpu_check.json"
# tests/unit/test_gpu_discovery.py::test_fails_clearly_without_nvidia_smi keeps /usr/bin on PATH,
# where a GPU machine has nvidia-smi, so only its stand-in test runs here.
GPU_TESTS = [
    "tests/infra/test_gpu_path.py",
    "tests/unit/test_gpu_discovery.py::test_prints_the_gpu_addresses_nvidia_smi_lists",
]
SIZES = [1_000_000, 10_000_000]


class GpuCheckFailed(SystemExit):
    """The check cannot run or did not pass; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(f"gpu-check: {message}")


def query_gpus() -> list[dict[str, str]]:
    """The GPUs nvidia-smi lists, or a GpuCheckFailed saying why there are none."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        raise GpuCheckFailed(
            "nvidia-smi not found: this machine has no NVIDIA driver (or it is not on PATH). "
            "gpu-check needs a CUDA GPU and does not fall back to the CPU."
        )
    fields = "index,name,driver_version,memory.total"
    result = subprocess.run(
        [smi, f"--query-gpu={fields}", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if result.returncode != 0 or not lines:
        detail = (result.stderr or result.stdout).strip() or f"exit status {result.returncode}"
        raise GpuCheckFailed(f"no CUDA device: nvidia-smi lists no GPU ({detail})")
    return [
        dict(zip(fields.split(","), (v.strip() for v in line.split(",")), strict=False)) for line in lines
    ]


def cuda_stack() -> dict[str, Any]:
    """Versions of the CUDA-side libraries; fails when XGBoost or CuPy cannot use the GPU."""
    import xgboost as xgb

    if not xgb.build_info().get("USE_CUDA", False):
        raise GpuCheckFailed(
            f"xgboost {xgb.__version__} is a CPU-only build (install the pinned xgboost wheel)"
        )
    try:
        import cupy as cp
    except ImportError:
        raise GpuCheckFailed(
            "CuPy is not installed (infra/docker/requirements-gpu.txt pins cupy-cuda13x)"
        ) from None
    try:
        devices = cp.cuda.runtime.getDeviceCount()
    except cp.cuda.runtime.CUDARuntimeError as exc:
        raise GpuCheckFailed(f"no CUDA device: the CUDA runtime says {exc}") from None
    if devices < 1:
        raise GpuCheckFailed("no CUDA device: the CUDA runtime sees none")
    stack: dict[str, Any] = {
        "xgboost": xgb.__version__,
        "cupy": cp.__version__,
        "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(),
        "cuda_driver": cp.cuda.runtime.driverGetVersion(),
        "cuda_devices": devices,
    }
    try:
        import onnxruntime as ort

        stack["onnxruntime"] = ort.__version__
        stack["onnxruntime_providers"] = ort.get_available_providers()
    except ImportError:
        stack["onnxruntime"] = None
    return stack


def junit_counts(path: Path) -> dict[str, int]:
    """tests, failures, errors and skipped from a pytest --junitxml file."""
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None, f"{path}: no testsuite"
    return {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}


def run_gpu_tests(workdir: Path) -> dict[str, Any]:
    """pytest on GPU_TESTS; every test must run and pass (a skip means the GPU path did not run)."""
    report = workdir / "gpu-tests.xml"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={report}",
        *GPU_TESTS,
    ]
    result = subprocess.run(command, cwd=REPO, check=False)
    counts = junit_counts(report) if report.exists() else {}
    if result.returncode != 0 or not counts.get("tests"):
        raise GpuCheckFailed(f"the GPU tests failed (pytest exit status {result.returncode}, {counts})")
    if counts["skipped"]:
        raise GpuCheckFailed(
            f"{counts['skipped']} GPU test(s) were skipped on a GPU machine: see the pytest output"
        )
    return {"ids": GPU_TESTS, **counts}


def run_bench(sizes: list[int], workdir: Path) -> dict[str, Any]:
    """`python -m bench.scoring --device cuda --rows ...`, its JSON result."""
    out = workdir / "scoring-cuda.json"
    command = [
        sys.executable,
        "-m",
        "bench.scoring",
        "--device",
        "cuda",
        "--rows",
        *map(str, sizes),
        "--out",
        str(out),
    ]
    result = subprocess.run(command, cwd=REPO, check=False)
    if result.returncode != 0 or not out.exists():
        raise GpuCheckFailed(f"bench.scoring --device cuda failed (exit status {result.returncode})")
    return json.loads(out.read_text())


def throughput(bench: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Rows/s per size: device-resident input, host Arrow batches end to end, naive host numpy."""
    return {
        rows: {
            "device_resident": figures["device_resident_rows_per_s"],
            "host_arrow_batches": figures["host_end_to_end_rows_per_s"],
            "naive_host_numpy": figures["naive_host_numpy_rows_per_s"],
        }
        for rows, figures in bench["figures"].items()
    }


def main(argv: list[str] | None = None) -> int:
    """Preflight, GPU tests, benchmark, then the JSON file; exits non-zero on the first failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=SIZES)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--skip-tests", action="store_true", help="benchmark only")
    args = parser.parse_args(argv)
    started = time.time()
    gpus = query_gpus()  # before any heavy import: fails in well under a second without a GPU
    stack = cuda_stack()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        tests = None if args.skip_tests else run_gpu_tests(Path(tmp))
        bench = run_bench(args.rows, Path(tmp))
    result = {
        "device": "cuda",
        "gpus": gpus,
        "versions": {
            "python": platform.python_version(),
            **stack,
            **{key: bench.get(key) for key in ("pyarrow", "pyspark")},
        },
        "tests": tests,
        "rows": args.rows,
        "rows_per_s": throughput(bench),
        "bench": bench,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["rows_per_s"]))
    print(f"gpu-check: ok, {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
