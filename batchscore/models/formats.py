"""Model files handed in from elsewhere: which format a file is, what inputs it takes, and
whether its outputs on a sample are usable scores. Every refusal is a `BadInput` naming
what to fix; nothing here writes to the registry.

Accepted: XGBoost boosters (JSON or UBJ) and ONNX models with one float32 input tensor
[rows, features]. Pickles (scikit-learn, joblib, torch `.pt`) are refused: loading one runs
arbitrary code, and the registry holds data only.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from batchscore.errors import BadInput
from batchscore.models.inference import OnnxScorer, ScoringError, XGBoostScorer

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".pt", ".pth", ".sav")
FORMATS = "XGBoost (.json, .ubj), ONNX (.onnx) or an MLflow model (folder, models:/, runs:/)"
XGB_TASKS = {"binary:logistic": "binary", "multi:softprob": "multiclass"}


@dataclass(frozen=True)
class InspectedModel:
    """A model file that loaded, with the input columns it declares (None: unnamed)."""

    format: str
    path: Path
    input_names: tuple[str, ...] | None
    width: int | None
    task: str | None
    detail: dict[str, Any] = field(default_factory=dict)


def is_pickle(path: Path) -> bool:
    """A pickle by name or by content (protocol 2+ opcode, or a torch/joblib zip of pickles)."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    with path.open("rb") as handle:
        head = handle.read(2)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return True
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith(".pkl") for name in archive.namelist())
    return False


def inspect_model(path: Path) -> InspectedModel:
    """Load `path` as XGBoost or ONNX (by suffix, else by content) and describe its inputs."""
    if not path.is_file():
        raise BadInput(f"model file {path} does not exist")
    if path.stat().st_size == 0:
        raise BadInput(f"model file {path} is empty")
    if is_pickle(path):
        raise BadInput(
            f"{path} is a pickle: batchscore never loads pickles (they run code); export the model as {FORMATS}"
        )
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return inspect_onnx(path)
    if suffix in (".json", ".ubj"):
        return inspect_xgboost(path)
    for attempt in (inspect_onnx, inspect_xgboost):
        try:
            return attempt(path)
        except BadInput:
            continue
    raise BadInput(f"{path} is not a model batchscore can read; expected {FORMATS}")


def inspect_xgboost(path: Path) -> InspectedModel:
    import xgboost as xgb

    booster = xgb.Booster()
    try:
        booster.load_model(str(path))
    except (xgb.core.XGBoostError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"{path} is not a readable XGBoost model (corrupt or truncated?): {first}") from None
    config = json.loads(booster.save_config())
    objective = config["learner"]["objective"]["name"]
    types = booster.feature_types or []
    if "c" in types:
        raise BadInput(f"{path} uses XGBoost categorical features; batchscore feeds float32 features only")
    task = XGB_TASKS.get(objective, "regression" if objective.startswith(("reg:", "count:")) else None)
    if task is None:
        raise BadInput(
            f"{path}: XGBoost objective {objective} gives no probability or value batchscore can publish; "
            "use binary:logistic, multi:softprob or a reg: objective"
        )
    names = tuple(booster.feature_names) if booster.feature_names else None
    classes = int(config["learner"]["learner_model_param"].get("num_class", "0") or 0)
    return InspectedModel(
        "xgboost",
        path,
        names,
        booster.num_features(),
        task,
        {"objective": objective, "trees": booster.num_boosted_rounds(), "num_class": classes},
    )


def inspect_onnx(path: Path) -> InspectedModel:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_model(str(path))
        onnx.checker.check_model(model)
    except (DecodeError, onnx.checker.ValidationError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"{path} is not a readable ONNX model (corrupt or truncated?): {first}") from None
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise BadInput(
            f"{path} has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); batchscore feeds one "
            "float32 tensor [rows, features]: export the model with a single input"
        )
    tensor = inputs[0].type.tensor_type
    if tensor.elem_type != onnx.TensorProto.FLOAT:
        kind = onnx.TensorProto.DataType.Name(tensor.elem_type).lower()
        raise BadInput(
            f"{path}: input {inputs[0].name} is {kind}, batchscore feeds float32: re-export with float"
        )
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    if len(dims) != 2:
        raise BadInput(
            f"{path}: input {inputs[0].name} has {len(dims)} dimensions; expected [rows, features]"
        )
    meta = {p.key: p.value for p in model.metadata_props}
    names = _names_from_metadata(meta.get("feature_names"))
    return InspectedModel(
        "onnx",
        path,
        names,
        dims[1],
        None,
        {"producer": f"{model.producer_name} {model.producer_version}".strip(), "opset": _opset(model)},
    )


def _opset(model: Any) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _names_from_metadata(value: str | None) -> tuple[str, ...] | None:
    """Feature names stored in an ONNX model's metadata (`feature_names`: JSON list or a,b,c)."""
    if not value:
        return None
    try:
        names = json.loads(value)
    except json.JSONDecodeError:
        names = [n.strip() for n in value.split(",")]
    return tuple(str(n) for n in names) if isinstance(names, list) else None


def check_inputs(
    model: InspectedModel, expected: Sequence[str], given: Sequence[str] | None
) -> tuple[str, ...]:
    """The model's input order, checked against the pipeline's feature names.

    A permutation is accepted (and returned); a missing or extra name, or a width that
    differs, is refused with the differences listed.
    """
    names = model.input_names
    if names and given and tuple(given) != names:
        raise BadInput(f"--feature-names disagrees with the names stored in the model: {', '.join(names)}")
    names = names or (tuple(given) if given else None)
    if names is None:
        raise BadInput(
            f"the model does not name its {model.width or '?'} inputs; pass --feature-names "
            "with its input columns in order (comma-separated, or @file with one per line)"
        )
    if len(set(names)) != len(names):
        raise BadInput(f"the model's input names repeat: {', '.join(names)}")
    missing = [n for n in expected if n not in names]
    extra = [n for n in names if n not in expected]
    if missing or extra:
        parts = [
            f"missing {', '.join(missing)}" if missing else "",
            f"extra {', '.join(extra)}" if extra else "",
        ]
        raise BadInput(
            "the model's inputs do not match the pipeline's features: " + "; ".join(p for p in parts if p)
        )
    if model.width is not None and model.width != len(names):
        raise BadInput(f"the model takes {model.width} inputs but names {len(names)}; it cannot be scored")
    return names


def check_task(model: InspectedModel, task: str, classes: Sequence[str]) -> None:
    """An XGBoost objective must fit the pipeline's `model.task` (ONNX is checked on its outputs)."""
    if model.task is not None and model.task != task:
        raise BadInput(
            f"the model's objective {model.detail.get('objective')} is {model.task}; "
            f"the pipeline's model.task is {task}"
        )
    if task == "multiclass" and model.detail.get("num_class") not in (None, len(classes)):
        raise BadInput(
            f"the model has {model.detail['num_class']} classes, the pipeline lists {len(classes)}"
        )


def sample_scores(model: InspectedModel, matrix: np.ndarray, task: str, classes: Sequence[str]) -> np.ndarray:
    """The model's scores on a sample, refused when they are not what the task publishes."""
    try:
        scorer = (
            XGBoostScorer(str(model.path), "cpu", task)
            if model.format == "xgboost"
            else OnnxScorer(str(model.path), "cpu", 0, task)
        )
        scores = scorer.predict(np.ascontiguousarray(matrix, dtype=np.float32), 0)
    except ScoringError as exc:
        raise BadInput(f"the model's output cannot be scored: {exc}") from None
    except Exception as exc:  # ONNX Runtime and XGBoost raise their own types on bad graphs
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"the model fails on a sample of {len(matrix)} rows: {first}") from None
    return check_scores(scores, len(matrix), task, len(classes))


def check_scores(scores: np.ndarray, rows: int, task: str, classes: int) -> np.ndarray:
    expected = (rows, classes) if task == "multiclass" else (rows,)
    if scores.shape != expected:
        raise BadInput(
            f"the model gives output of shape {scores.shape} on {rows} rows, a {task} model {expected}"
        )
    bad = int(np.count_nonzero(~np.isfinite(scores)))
    if bad:
        raise BadInput(f"the model gives {bad} NaN or infinite outputs on a sample of {rows} rows")
    if task != "regression" and (scores.min() < 0 or scores.max() > 1):
        raise BadInput(
            f"the model's outputs range {scores.min():.4g}..{scores.max():.4g}, probabilities must be in [0, 1] "
            "(raw margins? export probabilities)"
        )
    if task == "multiclass" and not np.allclose(scores.sum(axis=1), 1.0, atol=1e-3):
        raise BadInput("the model's class probabilities do not sum to 1 per row")
    return scores
