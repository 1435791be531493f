"""Reason codes: per-row feature contributions and the top k of them, in the scoring pass.

XGBoost's `pred_contribs` gives, per row, one contribution per feature plus the bias
(last column); they sum to the row's margin (log-odds for binary, the value for
regression). `approx` is Saabas (the change of the node value along the row's path);
`exact` is TreeSHAP. Saabas of binary and regression models comes from a vector-leaf copy
of the model (`saabas.py`: one prediction's cost), else from `pred_contribs`. A multiclass
model gives one set per class: the predicted class's is kept. Each row's k largest contributions by absolute value become k rows of the reasons
partition (key, rank 1..k, feature, value, contribution, model_version, run_date); `value`
is the feature's input as float (NaN when missing).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from batchscore.models.inference import ModelRef, ScoringError, XGBoostScorer
from batchscore.models.saabas import predict_contributions, vector_leaf_booster


@dataclass(frozen=True)
class ExplainSpec:
    """What the scoring pass explains: the champion's top `top_k` contributions per row."""

    top_k: int
    approx: bool = True


def check_explainable(ref: ModelRef, spec: ExplainSpec) -> None:
    """Refuse clearly, before any task runs, what reason codes cannot be computed for."""
    from batchscore.settings import ConfigError

    if ref.backend != "xgboost":
        raise ConfigError(
            f"explain: reason codes need an XGBoost booster (pred_contribs); {ref.model} v{ref.version} "
            f"scores with {ref.backend}: register its XGBoost artifact or remove `explain:`"
        )
    if spec.top_k > len(ref.feature_names):
        raise ConfigError(
            f"explain.top_k: {spec.top_k} is more than the {len(ref.feature_names)} features of "
            f"{ref.model} v{ref.version}"
        )


def contributions(
    scorer: XGBoostScorer, matrix: np.ndarray, scores: np.ndarray, approx: bool, threads: int
) -> np.ndarray:
    """(rows, features + 1) contributions, bias last; multiclass: the predicted class's."""
    import xgboost as xgb

    vector = _vector_leaf(scorer, matrix) if approx and scores.ndim == 1 else None
    if vector is not None:
        return predict_contributions(vector, matrix, threads)
    if threads:
        scorer.booster.set_param({"nthread": threads})
    data = xgb.DMatrix(matrix, missing=np.nan, nthread=threads or -1)
    values = np.asarray(
        scorer.booster.predict(data, pred_contribs=True, approx_contribs=approx, validate_features=False)
    )
    if values.ndim == 3:  # multiclass: (rows, classes, features + 1)
        if scores.ndim != 2:
            raise ScoringError(f"multiclass contributions {values.shape} for scores of shape {scores.shape}")
        values = values[np.arange(len(values)), np.argmax(scores, axis=1)]
    if values.ndim != 2 or values.shape[1] != matrix.shape[1] + 1:
        raise ScoringError(f"pred_contribs gave shape {values.shape} for {matrix.shape[1]} features")
    return values


_VECTOR_LEAF: weakref.WeakKeyDictionary[XGBoostScorer, Any] = weakref.WeakKeyDictionary()


def _vector_leaf(scorer: XGBoostScorer, probe: np.ndarray) -> Any | None:
    """The scorer's vector-leaf Saabas copy (built once per loaded model), or None."""
    if scorer not in _VECTOR_LEAF:
        vector = vector_leaf_booster(scorer.booster, probe)
        if vector is not None:
            vector.set_param({"device": scorer.device})
        _VECTOR_LEAF[scorer] = vector
    return _VECTOR_LEAF[scorer]


def top_k(contribs: np.ndarray, k: int) -> np.ndarray:
    """(rows, k) feature indices of each row's k largest |contribution| (bias excluded), largest
    first; ties keep the lower feature index first."""
    features = contribs[:, :-1]
    k = min(k, features.shape[1])
    magnitude = np.abs(features)
    if k < features.shape[1]:
        candidates = np.argpartition(-magnitude, k - 1, axis=1)[:, :k]
    else:
        candidates = np.broadcast_to(np.arange(k), magnitude.shape).copy()
    picked = np.take_along_axis(magnitude, candidates, axis=1)
    # sort each row's candidates by (|contribution| desc, index asc)
    order = np.lexsort((candidates, -picked), axis=1)
    return np.take_along_axis(candidates, order, axis=1)


def reasons_schema(entity_key: str, key_type: pa.DataType) -> pa.Schema:
    """The reasons partition's columns; `publish` reads exactly these."""
    return pa.schema(
        [
            (entity_key, key_type),
            ("rank", pa.int16()),
            ("feature", pa.string()),
            ("value", pa.float64()),
            ("contribution", pa.float64()),
            ("model_version", pa.int64()),
            ("run_date", pa.date32()),
        ]
    )


def reasons_batch(
    keys: pa.Array,
    matrix: np.ndarray,
    contribs: np.ndarray,
    k: int,
    names: Sequence[str],
    version: int,
    run_date: date,
    entity_key: str,
    key_type: pa.DataType,
) -> pa.RecordBatch:
    """k rows per input row, row-major (a row's ranks together)."""
    picked = top_k(contribs, k)
    rows, k = picked.shape
    flat = picked.reshape(-1)
    repeat = np.repeat(np.arange(rows), k)
    feature = pa.DictionaryArray.from_arrays(pa.array(flat.astype(np.int32)), pa.array(list(names)))
    columns = [
        keys.cast(key_type).take(pa.array(repeat)),
        pa.array(np.tile(np.arange(1, k + 1, dtype=np.int16), rows)),
        feature.cast(pa.string()),
        pa.array(matrix[repeat, flat].astype(np.float64)),
        pa.array(contribs[repeat, flat].astype(np.float64)),
        pa.array(np.full(rows * k, version, dtype=np.int64)),
        pa.array(np.full(rows * k, np.datetime64(run_date, "D"))),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=reasons_schema(entity_key, key_type))


class ReasonsWriter:
    """One task attempt's reasons file for the champion, and its |contribution| sums."""

    def __init__(self, path: Path, spec: ExplainSpec, ref: ModelRef, entity_key: str, key_type: pa.DataType):
        import pyarrow.parquet as pq

        self.path, self.spec, self.ref = path, spec, ref
        self.entity_key, self.key_type = entity_key, key_type
        path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = pq.ParquetWriter(path, reasons_schema(entity_key, key_type), compression="snappy")
        self.abs_sums = np.zeros(len(ref.feature_names), dtype=np.float64)
        self.rows = 0

    def write(
        self,
        scorer: Any,
        keys: pa.Array,
        matrix: np.ndarray,
        scores: np.ndarray,
        threads: int,
        run_date: date,
    ) -> None:
        contribs = contributions(scorer, matrix, scores, self.spec.approx, threads)
        self.abs_sums += np.abs(contribs[:, :-1]).sum(axis=0, dtype=np.float64)
        self.rows += len(contribs)
        self.writer.write_batch(
            reasons_batch(
                keys,
                matrix,
                contribs,
                self.spec.top_k,
                self.ref.feature_names,
                self.ref.version,
                run_date,
                self.entity_key,
                self.key_type,
            )
        )

    def close(self) -> None:
        self.writer.close()

    def report(self) -> dict[str, Any]:
        """What the task reports beside its scores file: the file and the sums (JSON)."""
        import json

        return {
            "reasons_file": str(self.path),
            "attribution": json.dumps([*self.abs_sums.tolist(), self.rows]),
        }


def mean_abs_contribution(reports: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, float]:
    """The day's mean |contribution| per feature, from every task's sums."""
    import json

    totals = np.zeros(len(names), dtype=np.float64)
    rows = 0
    for report in reports:
        *sums, count = json.loads(report["attribution"])
        totals += np.asarray(sums, dtype=np.float64)
        rows += int(count)
    return {name: float(total / rows) if rows else 0.0 for name, total in zip(names, totals, strict=True)}


def commit_reasons(
    reports: Sequence[dict[str, Any]],
    items: int,
    staging: Path,
    ref: ModelRef,
    spec: ExplainSpec,
    scores_staging: Path,
    entity_key: str,
    key_type: pa.DataType,
) -> int:
    """Move the champion's reported reasons files into `staging` and write its manifest.

    The manifest ties the reasons to the scores they explain (the scores partition's
    checksum): `publish` refuses reasons computed with other scores. Returns the rows.
    """
    import pyarrow.parquet as pq

    from batchscore.storage.lake import partition_checksum
    from batchscore.storage.manifest import ReasonsManifest, write_manifest

    mine = sorted(
        (int(r["item"]), str(r["reasons_file"])) for r in reports if int(r["model_version"]) == ref.version
    )
    if len(mine) != items or any(not file for _, file in mine):
        raise ScoringError(f"{len(mine)} of {items} work items reported reasons; nothing is committed")
    staging.mkdir(parents=True, exist_ok=True)
    for index, file in mine:
        Path(file).rename(staging / f"part-{index:05d}.parquet")
    if not mine:
        pq.write_table(reasons_schema(entity_key, key_type).empty_table(), staging / "part-00000.parquet")
    rows = sum(pq.read_metadata(p).num_rows for p in sorted(staging.glob("*.parquet")))
    manifest = ReasonsManifest(
        model_version=ref.version,
        top_k=min(spec.top_k, len(ref.feature_names)),
        method="approx" if spec.approx else "exact",
        rows=rows,
        scores_checksum=partition_checksum(scores_staging),
        mean_abs_contribution=mean_abs_contribution(
            [r for r in reports if int(r["model_version"]) == ref.version], ref.feature_names
        ),
    )
    write_manifest(staging, manifest)
    return rows


REFERENCE_ROWS = 20_000
EXACT_REFERENCE_ROWS = 2_000


def reference_attribution(
    artifact: str, reference: Any, names: list[str], approx: bool, task: str
) -> dict[str, float]:
    """The training reference's mean |contribution| per feature, with the scoring pass's method."""
    rows = REFERENCE_ROWS if approx else EXACT_REFERENCE_ROWS
    matrix = np.ascontiguousarray(reference[names].head(rows).to_numpy(np.float32))
    if len(matrix) == 0:
        return dict.fromkeys(names, 0.0)
    scorer = XGBoostScorer(artifact, "cpu", task)
    contribs = contributions(scorer, matrix, scorer.predict(matrix, 0), approx, 0)
    means = np.abs(contribs[:, :-1]).mean(axis=0)
    return {name: float(m) for name, m in zip(names, means, strict=True)}
