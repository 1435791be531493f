"""Time the drift gate's native statistics on a 1M-row, 25-column partition.

    .venv/bin/python -m bench.drift_gate [--rows 1000000] [--columns 25]

Reference: 20,000 rows (the training reference's default size). Methods: PSI for every
column, KS for every column, Wasserstein for every column, and the churn pipeline's
per-segment run (PSI, 2 segments). Writes bench/results/drift_gate.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from batchscore.quality.drift import compute_drift


def frames(rows: int, columns: int, reference_rows: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    rng = np.random.default_rng(0)
    names = [f"f{i:02d}" for i in range(columns - 1)]

    def one(n: int, shift: float) -> pd.DataFrame:
        data: dict[str, np.ndarray] = {
            name: rng.normal(shift if i % 5 == 0 else 0.0, 1.0, n).astype(np.float32)
            for i, name in enumerate(names)
        }
        data["segment"] = rng.integers(0, 2, n).astype(np.float32)
        data["score"] = rng.random(n)
        return pd.DataFrame(data)

    return one(reference_rows, 0.0), one(rows, 0.3), names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=25, help="features + the score")
    args = parser.parse_args()
    reference, current, names = frames(args.rows, args.columns, 20_000)
    import scipy.stats  # noqa: F401  (imported once per process; not part of the per-run time)

    timings = {}
    for label, kwargs in (
        ("psi", {"default_method": "psi"}),
        ("ks", {"default_method": "ks"}),
        ("wasserstein", {"default_method": "wasserstein"}),
        ("psi_with_segments", {"default_method": "psi", "segment_column": "segment"}),
        ("ks_with_segments", {"default_method": "ks", "segment_column": "segment"}),
    ):
        started = time.perf_counter()
        result = compute_drift(reference, current, names, prediction_column="score", **kwargs)  # type: ignore[arg-type]
        timings[label] = {
            "seconds": round(time.perf_counter() - started, 3),
            "drifted_share": round(result.drifted_share, 3),
            "statistics": len(result.all_metrics()),
        }
    load = os.getloadavg()
    out = {
        "benchmark": "drift_gate",
        "rows": args.rows,
        "columns": args.columns,
        "reference_rows": len(reference),
        "timings": timings,
        "load_average_1m": round(load[0], 2),
        "cpus": os.cpu_count(),
    }
    path = Path(__file__).parent / "results" / "drift_gate.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
