"""Scoring throughput: batchscore's score stage against the in-process limit and a naive baseline.

    python -m bench.scoring --rows 1000000                 # CPU, Spark local mode (needs Java)
    python -m bench.scoring --device cuda --rows 1000000 10000000   # GPU, no Spark

CPU: generates a features partition (30 float32 features + an int64 key, several Parquet
files) and an XGBoost model (300 trees, depth 6), then, interleaved and repeated:
- limit: one Python process reads the Parquet with pyarrow, scores with `inplace_predict`
  on all cores, writes Parquet;
- batchscore: `batchscore.models.scoring_driver.score_partition` (the score stage's code path:
  plan, Spark tasks, commit the scores partition) in Spark local mode on the same files;
- baseline: Spark `predict_batch_udf` over the same files, written with Spark.
- predict-only: `inplace_predict` on the same rows already in memory as one float32 array,
  all cores, same model: the rate no CPU engine can pass (no I/O, no decode, no copy).
The ratio is batchscore / limit, predict_only_ratio batchscore / predict-only (medians of
the per-repeat ratios; a rate ratio, so 1.0 means as fast as the limit).

GPU: XGBoost on the device, from host Arrow batches end to end
(`score_arrow_batches_gpu`), from device-resident input, and the naive host-numpy call.
Prints one JSON object as its last line and writes it to bench/results/scoring-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FEATURES = 30
TREES = 300
DEPTH = 6
ENTITY_KEY = "entity_id"
RUN_DATE = date(2026, 11, 21)
RESULTS = Path(__file__).resolve().parent / "results"


def feature_names() -> list[str]:
    return [f"f{j:02d}" for j in range(FEATURES)]


def synthetic_matrix(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, FEATURES)).astype(np.float32)


def train_model(out: Path, device: str = "cpu") -> Path:
    """300 trees of depth 6 over 30 features, saved as UBJ."""
    import xgboost as xgb

    x = synthetic_matrix(50_000, seed=1)
    signal = x[:, 0] + 0.5 * x[:, 1] * x[:, 2] - 0.3 * np.abs(x[:, 3]) + np.sin(x[:, 4])
    y = (signal + np.random.default_rng(2).normal(0, 1.0, len(x)) > 0).astype(np.int32)
    params = {
        "objective": "binary:logistic",
        "max_depth": DEPTH,
        "eta": 0.05,
        "min_child_weight": 0,
        "tree_method": "hist",
        "device": device,
        "nthread": os.cpu_count() or 1,
    }
    booster = xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=TREES)
    path = out / "model.ubj"
    booster.save_model(path)
    return path


def write_features(folder: Path, rows: int, files: int, row_group_rows: int) -> list[Path]:
    """A features partition like build_features writes: several files, float32 features."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    per_file = -(-rows // files)
    for n, start in enumerate(range(0, rows, per_file)):
        count = min(per_file, rows - start)
        x = synthetic_matrix(count, seed=100 + n)
        columns = {ENTITY_KEY: pa.array(np.arange(start, start + count, dtype=np.int64))}
        columns.update({name: pa.array(x[:, j]) for j, name in enumerate(feature_names())})
        path = folder / f"part-{n:05d}.parquet"
        pq.write_table(pa.table(columns), path, row_group_size=row_group_rows, compression="snappy")
        paths.append(path)
    (folder / "_SUCCESS").touch()
    return paths


def run_limit(files: list[Path], model: Path, out: Path) -> int:
    """The in-process limit: pyarrow read, one matrix, inplace_predict on all cores, Parquet write."""
    import xgboost as xgb

    from batchscore.models.inference import feature_matrix
    from batchscore.models.scoring import scores_batch

    booster = xgb.Booster(model_file=str(model))
    booster.set_param({"nthread": os.cpu_count() or 1})
    names = feature_names()
    out.mkdir(parents=True, exist_ok=True)
    rows = 0
    for n, path in enumerate(files):
        table = pq.read_table(path, columns=[ENTITY_KEY, *names])
        scores = booster.inplace_predict(feature_matrix(table, names), validate_features=False)
        keys = table.column(ENTITY_KEY).combine_chunks()
        batch = scores_batch(keys, np.asarray(scores, dtype=np.float64), 1, RUN_DATE, ENTITY_KEY)
        pq.write_table(pa.Table.from_batches([batch]), out / f"part-{n:05d}.parquet", compression="snappy")
        rows += table.num_rows
    return rows


def load_matrix(files: list[Path]) -> np.ndarray:
    """The same rows as one in-memory float32 matrix (not timed): the predict-only input."""
    from batchscore.models.inference import feature_matrix

    names = feature_names()
    parts = [feature_matrix(pq.read_table(path, columns=names), names) for path in files]
    return np.ascontiguousarray(np.concatenate(parts).astype(np.float32, copy=False))


def run_predict_only(matrix: np.ndarray, model: Path) -> Callable[[], int]:
    """The predict-only limit: `inplace_predict` on the in-memory matrix, all cores, same model."""
    import xgboost as xgb

    booster = xgb.Booster(model_file=str(model))
    booster.set_param({"nthread": os.cpu_count() or 1})

    def predict() -> int:
        return int(booster.inplace_predict(matrix, validate_features=False).shape[0])

    return predict


def run_batchscore(spark: Any, lake: Any, files: list[Path], rows: int, model: Path) -> int:
    """The score stage's code path (plan, Spark tasks, commit) on the same files."""
    from batchscore.models.inference import ModelRef
    from batchscore.models.scoring_driver import score_partition
    from batchscore.storage.lake import file_sha256

    ref = ModelRef(
        model="bench",
        version=1,
        backend="xgboost",
        artifact_path=str(model),
        sha256=file_sha256(model),
        feature_names=tuple(feature_names()),
        device="cpu",
    )
    final = lake.scores_partition("bench", 1, RUN_DATE)
    scored = score_partition(spark, lake, files, rows, [ref], {1: final}, ENTITY_KEY, RUN_DATE, 65_536)
    return int(scored["rows"][1])


def run_baseline(spark: Any, files: list[Path], model: Path, out: Path) -> int:
    """Naive Spark: predict_batch_udf over an array column of the features, written by Spark."""
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql import functions as F
    from pyspark.sql.types import FloatType

    model_path = str(model)

    def make_predict() -> Callable[[np.ndarray], np.ndarray]:
        import xgboost as xgb

        booster = xgb.Booster(model_file=model_path)
        booster.set_param({"nthread": 1})
        return lambda inputs: booster.inplace_predict(inputs, validate_features=False)

    predict = predict_batch_udf(
        make_predict, return_type=FloatType(), batch_size=65_536, input_tensor_shapes=[[FEATURES]]
    )
    frame = spark.read.parquet(*[str(f) for f in files])
    scored = frame.select(ENTITY_KEY, predict(F.array(*feature_names())).alias("score"))
    scored.write.mode("overwrite").parquet(str(out))
    return sum(pq.read_metadata(p).num_rows for p in out.glob("*.parquet"))


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    rows = fn()
    return time.perf_counter() - started, rows


def interleaved(runs: dict[str, Callable[[], int]], repeats: int, rows: int) -> dict[str, list[float]]:
    """Each run once per repeat, in turn, so load drifts hit them all alike; checks the row counts."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            seconds, scored = timed(fn)
            if scored != rows:
                raise RuntimeError(f"{name} scored {scored} rows, expected {rows}")
            times[name].append(seconds)
    return times


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def bench_cpu(rows: int, repeats: int, files: int, row_group_rows: int, workdir: Path) -> dict[str, Any]:
    from batchscore.compute.spark import get_spark
    from batchscore.settings import load_platform
    from batchscore.storage.lake import Lake

    load_before = uptime()
    model = train_model(workdir)
    features = write_features(workdir / "features", rows, files, row_group_rows)
    lake = Lake(str(workdir / "lake"))
    spark = get_spark(
        load_platform({"BATCHSCORE_HOME": str(workdir), "BATCHSCORE_SPARK_MASTER": "local[*]"}),
        app_name="bench-scoring",
    )
    try:
        # Warm-up (not timed): JVM, Python worker pool, model load in each worker.
        run_batchscore(spark, lake, features, rows, model)
        run_baseline(spark, features, model, workdir / "baseline")
        predict_only = run_predict_only(load_matrix(features), model)
        predict_only()
        runs: dict[str, Callable[[], int]] = {
            "predict_only": predict_only,
            "limit": lambda: run_limit(features, model, workdir / "limit"),
            "batchscore": lambda: run_batchscore(spark, lake, features, rows, model),
            "baseline": lambda: run_baseline(spark, features, model, workdir / "baseline"),
        }
        times = interleaved(runs, repeats, rows)
    finally:
        spark.stop()
    predict, limit, batchscore, baseline = (times[k] for k in runs)
    ratios = [lim / bs for lim, bs in zip(limit, batchscore, strict=True)]
    predict_ratios = [p / bs for p, bs in zip(predict, batchscore, strict=True)]
    return {
        "device": "cpu",
        "rows": rows,
        "features": FEATURES,
        "trees": TREES,
        "depth": DEPTH,
        "files": len(features),
        "row_group_rows": row_group_rows,
        "cores": os.cpu_count(),
        "repeats": repeats,
        "predict_only_rows_per_s": round(rows / statistics.median(predict)),
        "limit_rows_per_s": round(rows / statistics.median(limit)),
        "batchscore_rows_per_s": round(rows / statistics.median(batchscore)),
        "baseline_rows_per_s": round(rows / statistics.median(baseline)),
        "ratio": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
        "predict_only_ratio": round(statistics.median(predict_ratios), 3),
        "predict_only_ratios": [round(r, 3) for r in predict_ratios],
        "seconds": {"predict_only": predict, "limit": limit, "batchscore": batchscore, "baseline": baseline},
        "uptime_before": load_before,
        "uptime_after": uptime(),
        **versions(),
    }


def bench_cuda(sizes: list[int], repeats: int, workdir: Path) -> dict[str, Any]:
    """GPU figures without Spark: host Arrow -> device end to end, device-resident, naive host numpy."""
    from batchscore.models.devices import resolve_device, score_arrow_batches_gpu
    from batchscore.models.inference import ScoringError

    device = resolve_device("cuda", "xgboost")  # fails clearly without a usable GPU
    try:
        import cupy as cp
    except ImportError as exc:
        raise ScoringError("--device cuda needs cupy (pip install cupy-cuda12x or cupy-cuda13x)") from exc
    import xgboost as xgb

    booster = xgb.Booster(model_file=str(train_model(workdir, device="cuda")))
    booster.set_param({"device": device})
    names = feature_names()
    figures: dict[str, Any] = {}
    for rows in sizes:
        x = synthetic_matrix(rows, seed=3)
        table = pa.table({name: pa.array(x[:, j]) for j, name in enumerate(names)})
        batches = table.to_batches(max_chunksize=1 << 20)
        on_device = cp.asarray(x)

        def end_to_end(batches: list[pa.RecordBatch] = batches) -> int:
            return sum(len(s) for s in score_arrow_batches_gpu(batches, booster, names))

        def resident(on_device: Any = on_device) -> int:
            scores = booster.inplace_predict(on_device, validate_features=False)
            cp.cuda.Device().synchronize()
            return int(scores.shape[0])

        def naive(x: np.ndarray = x) -> int:
            return int(booster.inplace_predict(x, validate_features=False).shape[0])

        check = np.concatenate(list(score_arrow_batches_gpu(batches[:1], booster, names)))
        expected = cp.asnumpy(booster.inplace_predict(on_device[: len(check)], validate_features=False))
        max_diff = float(np.max(np.abs(check - expected)))
        result: dict[str, Any] = {"max_abs_diff_staged_vs_resident": max_diff}
        for name, fn in (
            ("host_end_to_end", end_to_end),
            ("device_resident", resident),
            ("naive_host_numpy", naive),
        ):
            fn()  # warm-up
            seconds = [timed(fn)[0] for _ in range(repeats)]
            result[f"{name}_rows_per_s"] = round(rows / statistics.median(seconds))
        figures[str(rows)] = result
        del on_device
    return {
        "device": "cuda",
        "gpu": subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
        "features": FEATURES,
        "trees": TREES,
        "depth": DEPTH,
        "repeats": repeats,
        "rows": sizes,
        "figures": figures,
        "uptime": uptime(),
        **versions(),
    }


def versions() -> dict[str, str]:
    import pyspark
    import xgboost as xgb

    return {
        "python": platform.python_version(),
        "xgboost": xgb.__version__,
        "pyspark": pyspark.__version__,
        "pyarrow": pa.__version__,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        type=int,
        nargs="+",
        default=None,
        help="CPU: one size (default 1M); cuda: sizes (default 1M 10M)",
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--files", type=int, default=4, help="CPU: Parquet files in the features partition")
    parser.add_argument("--row-group-rows", type=int, default=131_072)
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/scoring-<device>.json")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    args = parser.parse_args(argv)
    from batchscore.errors import PermanentFailure

    workdir = Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    try:
        if args.device == "cuda":
            result = bench_cuda(args.rows or [1_000_000, 10_000_000], args.repeats, workdir)
        else:
            rows = (args.rows or [1_000_000])[0]
            result = bench_cpu(rows, args.repeats, args.files, args.row_group_rows, workdir)
    except PermanentFailure as exc:
        raise SystemExit(f"bench.scoring --device {args.device}: {exc}") from None
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    out = args.out or RESULTS / f"scoring-{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
