"""Reason codes' cost: the score stage with and without `explain: {top_k: 3}`, in one run.

    python -m bench.explain --rows 1000000              # CPU, Spark local mode (needs Java)
    python -m bench.explain --rows 1000000 --method exact

Generates a features partition shaped like the churn pipeline's (24 float32 features, an
int64 key, several Parquet files) and an XGBoost model like churn's training defaults (200
trees, depth 6), then, interleaved and repeated in the same Spark session:
- without: `batchscore.models.scoring_driver.score_partition` (plan, Spark tasks, commit the
  scores partition);
- with: the same call with reason codes (contributions in the same tasks, top 3 per row,
  the reasons partition committed beside the scores);
- limits (one process, rows already in memory, all cores): `inplace_predict`, the
  contributions as the stage computes them (`contribs_only`: the vector-leaf Saabas copy for
  `approx`), and XGBoost's `pred_contribs` with the same method.
`ratio` is with / without (a rate ratio, median of the per-repeat ratios; goal >= 0.3 on a
CPU). Prints one JSON object as its last line and writes it to bench/results/explain.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.scoring import ENTITY_KEY, RUN_DATE, interleaved, timed, uptime, versions

FEATURES = 24
TREES = 200
DEPTH = 6
TOP_K = 3
RESULTS = Path(__file__).resolve().parent / "results"


def train_model(out: Path) -> Path:
    """200 trees of depth 6 over the bench features (churn's training defaults), saved as UBJ."""
    import xgboost as xgb

    x = np.random.default_rng(1).normal(size=(50_000, 30)).astype(np.float32)[:, :FEATURES]
    signal = (
        x[:, 0] + 0.5 * x[:, 1] * x[:, 2] - 0.3 * np.abs(x[:, 3]) + np.sin(x[:, 4]) + 0.2 * x[:, 5:].sum(1)
    )
    y = (signal + np.random.default_rng(2).normal(0, 1.0, len(x)) > 0).astype(np.int32)
    params = {
        "objective": "binary:logistic",
        "max_depth": DEPTH,
        "eta": 0.1,
        "subsample": 0.9,
        "colsample_bytree": 0.9,
        "min_child_weight": 5,
        "tree_method": "hist",
        "nthread": os.cpu_count() or 1,
    }
    booster = xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=TREES)
    path = out / "model.ubj"
    booster.save_model(path)
    return path


def names() -> list[str]:
    return [f"f{j:02d}" for j in range(FEATURES)]


def write_features(folder: Path, rows: int, files: int, row_group_rows: int) -> list[Path]:
    """A features partition like build_features writes: several files, float32 features, a few NaN."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    paths, per_file = [], -(-rows // files)
    for n, start in enumerate(range(0, rows, per_file)):
        count = min(per_file, rows - start)
        x = np.random.default_rng(100 + n).normal(size=(count, FEATURES)).astype(np.float32)
        x[::97, 7] = np.nan  # missing values go through the model as XGBoost's missing
        columns = {ENTITY_KEY: pa.array(np.arange(start, start + count, dtype=np.int64))}
        columns.update({name: pa.array(x[:, j]) for j, name in enumerate(names())})
        paths.append(folder / f"part-{n:05d}.parquet")
        pq.write_table(pa.table(columns), paths[-1], row_group_size=row_group_rows, compression="snappy")
    (folder / "_SUCCESS").touch()
    return paths


def score_stage(spark: Any, lake: Any, files: list[Path], rows: int, model: Path, explain: Any) -> int:
    """The score stage's code path on the same files, with or without reason codes."""
    from batchscore.models.inference import ModelRef
    from batchscore.models.scoring_driver import score_partition
    from batchscore.models.scoring_pass import ReasonCodes
    from batchscore.storage.lake import file_sha256

    ref = ModelRef("bench", 1, "xgboost", str(model), file_sha256(model), tuple(names()), device="cpu")
    final = lake.scores_partition("bench", 1, RUN_DATE)
    spec = ReasonCodes(explain, lake.reasons_partition("bench", 1, RUN_DATE)) if explain else None
    scored = score_partition(spark, lake, files, rows, [ref], {1: final}, ENTITY_KEY, RUN_DATE, 65_536, spec)
    if explain and scored["reasons"]["rows"] != TOP_K * rows:
        raise RuntimeError(f"{scored['reasons']['rows']} reasons for {rows} rows")
    return int(scored["rows"][1])


def limits(files: list[Path], model: Path, approx: bool, rows: int) -> dict[str, int]:
    """In-memory rates of one process on all cores: predict, and contributions (same method)."""
    import pyarrow.parquet as pq
    import xgboost as xgb

    from batchscore.models.inference import XGBoostScorer, feature_matrix
    from batchscore.models.reasons import contributions

    sample = min(rows, 200_000 if approx else 5_000)
    matrix = np.concatenate([feature_matrix(pq.read_table(p, columns=names()), names()) for p in files])[
        :sample
    ]
    scorer = XGBoostScorer(str(model), "cpu")
    threads = os.cpu_count() or 1
    booster = xgb.Booster(model_file=str(model))
    booster.set_param({"nthread": threads})
    contributions(scorer, matrix[:1_000], scorer.predict(matrix[:1_000], threads), approx, threads)  # warm-up
    predict, _ = timed(lambda: int(booster.inplace_predict(matrix, validate_features=False).shape[0]))
    contribs, _ = timed(
        lambda: len(contributions(scorer, matrix, scorer.predict(matrix, threads), approx, threads))
    )
    data = xgb.DMatrix(matrix, missing=np.nan, nthread=threads)
    plain, _ = timed(lambda: len(booster.predict(data, pred_contribs=True, approx_contribs=approx)))
    return {
        "limit_rows": sample,
        "pred_contribs_only_rows_per_s": round(sample / plain),
        "predict_only_rows_per_s": round(sample / predict),
        "contribs_only_rows_per_s": round(sample / contribs),
    }


def bench(rows: int, repeats: int, files: int, method: str, workdir: Path) -> dict[str, Any]:
    from batchscore.compute.spark import get_spark
    from batchscore.models.reasons import ExplainSpec
    from batchscore.settings import load_platform
    from batchscore.storage.lake import Lake

    load_before = uptime()
    model = train_model(workdir)
    features = write_features(workdir / "features", rows, files, 131_072)
    lake = Lake(str(workdir / "lake"))
    spark = get_spark(
        load_platform({"BATCHSCORE_HOME": str(workdir), "BATCHSCORE_SPARK_MASTER": "local[*]"}),
        app_name="bench-explain",
    )
    explain = ExplainSpec(TOP_K, approx=method == "approx")
    try:
        runs: dict[str, Callable[[], int]] = {
            "without": lambda: score_stage(spark, lake, features, rows, model, None),
            "with": lambda: score_stage(spark, lake, features, rows, model, explain),
        }
        for fn in runs.values():
            fn()  # warm-up (not timed): JVM, Python workers, model loads
        times = interleaved(runs, repeats, rows)
    finally:
        spark.stop()
    without, with_reasons = times["without"], times["with"]
    ratios = [w / r for w, r in zip(without, with_reasons, strict=True)]
    return {
        "rows": rows,
        "method": method,
        "top_k": TOP_K,
        "features": FEATURES,
        "trees": TREES,
        "depth": DEPTH,
        "files": len(features),
        "repeats": repeats,
        "rows_per_s_without_reasons": round(rows / statistics.median(without)),
        "rows_per_s_with_reasons": round(rows / statistics.median(with_reasons)),
        "ratio": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
        "goal_ratio": 0.3,
        "seconds": times,
        **limits(features, model, method == "approx", rows),
        "machine": machine(),
        "uptime_before": load_before,
        "uptime_after": uptime(),
        **versions(),
    }


def machine() -> dict[str, Any]:
    """The CPU the figures come from (the load is in uptime_before/after)."""
    import platform

    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        model = next(
            (ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if "model name" in ln), ""
        )
    return {"cores": os.cpu_count(), "cpu": model or platform.processor(), "system": platform.platform()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--files", type=int, default=4, help="Parquet files in the features partition")
    parser.add_argument("--method", choices=["approx", "exact"], default="approx")
    parser.add_argument("--out", type=Path, default=RESULTS / "explain.json")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-explain-"))
    try:
        result = bench(args.rows, args.repeats, args.files, args.method, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
