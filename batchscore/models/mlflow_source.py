"""MLflow models as an import source: a local MLflow model folder, or a `models:/` or `runs:/` URI.

`fetch_mlflow_model` downloads the model's artifacts with the `mlflow` client (mlflow-skinny,
imported lazily) against the tracking server, reads its `MLmodel` file as plain YAML and names
the one model file batchscore registers. Only the xgboost and onnx flavors are accepted: every
other flavor needs pickle to load, and the registry stays pickle-free. Each failure is a
`BadInput` whose one line says what to fix.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from batchscore.errors import BadInput

ACCEPTED_FLAVORS = ("xgboost", "onnx")
ACCEPTED_MESSAGE = "batchscore accepts MLflow models with the xgboost or onnx flavor"
# MLflow's xgboost flavor saves the Booster natively in one of these (`model_format`).
XGBOOST_FORMATS = ("json", "ubj", "xgb", "deprecated")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".cloudpickle")

URI_SCHEMES = ("models:/", "runs:/")
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/]+)|@(?P<alias>[^/]+))/?$")
_RUNS_URI = re.compile(r"^runs:/(?P<run_id>[^/]+)/(?P<path>.+)$")

# A user's command should fail in seconds on an unreachable server, not retry for minutes,
# and talk to nothing but the tracking server (no usage telemetry).
CLIENT_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}


@dataclass(frozen=True)
class MlflowModel:
    """An MLflow model downloaded into a local folder, reduced to what batchscore registers."""

    artifact: Path  # the model file itself, inside the destination folder
    format: Literal["xgboost", "onnx"]
    flavor: dict[str, Any]  # the MLmodel's section for that flavor, as written
    source: str  # the URI or path as given
    run_id: str | None
    model_uuid: str | None
    signature_inputs: list[str] | None  # input column names from the signature, when it has them
    mlflow_version: str | None


def is_mlflow_source(source: str) -> bool:
    """Whether `source` names an MLflow model: a models:/ or runs:/ URI, or a folder with MLmodel."""
    return source.startswith(URI_SCHEMES) or (Path(source) / "MLmodel").is_file()


def fetch_mlflow_model(source: str, dest: Path, tracking_uri: str | None = None) -> MlflowModel:
    """Bring the MLflow model `source` into `dest` and describe its xgboost or onnx model file.

    URIs resolve against `tracking_uri`, else mlflow's own setting (MLFLOW_TRACKING_URI).
    """
    dest.mkdir(parents=True, exist_ok=True)
    if source.startswith(URI_SCHEMES):
        root, run_id = _download(source, dest, tracking_uri)
    else:
        root, run_id = _copy_folder(Path(source), dest), None
    mlmodel = read_mlmodel(root, source)
    return describe(mlmodel, root, source, run_id or _optional_str(mlmodel.get("run_id")))


def _copy_folder(folder: Path, dest: Path) -> Path:
    """Copy a local MLflow model folder into `dest` (so the result never points at the user's files)."""
    if folder.name == "MLmodel" and folder.is_file():
        folder = folder.parent
    if not folder.is_dir():
        raise BadInput(
            f"MLflow model {folder} is not a folder, nor a models:/NAME/VERSION, models:/NAME@ALIAS"
            " or runs:/RUN_ID/PATH URI"
        )
    if not (folder / "MLmodel").is_file():
        raise BadInput(f"folder {folder} has no MLmodel file: point at the folder MLflow saved the model in")
    target = dest / "mlflow-model"
    shutil.copytree(folder, target, dirs_exist_ok=True)
    return target


def _download(uri: str, dest: Path, tracking_uri: str | None) -> tuple[Path, str | None]:
    """Resolve `uri` on the tracking server and download its artifacts; return (folder, run id)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if tracking_uri is None and not mlflow.is_tracking_uri_set():
        raise BadInput(f"set MLFLOW_TRACKING_URI to the MLflow tracking server to resolve {uri}")
    server = tracking_uri or mlflow.get_tracking_uri()
    with _client_env():
        try:
            artifact_uri, run_id = _resolve(uri, server)
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=artifact_uri, dst_path=str(dest), tracking_uri=server
            )
        except MlflowException as error:
            raise _bad_uri(uri, server, error) from None
        except OSError as error:  # requests' ConnectionError and Timeout are OSErrors too
            raise _unreachable(uri, server, error) from None
    root = Path(local)
    if not (root / "MLmodel").is_file():
        raise BadInput(f"{uri} resolves to artifacts without an MLmodel file: name the MLflow model's folder")
    return root, run_id


def _resolve(uri: str, server: str) -> tuple[str, str | None]:
    """The artifact URI to download and the run that logged it; a models:/ URI names its version."""
    import mlflow

    runs = _RUNS_URI.match(uri)
    if runs:
        return uri, runs["run_id"]
    models = _MODELS_URI.match(uri)
    if not models:
        raise BadInput(
            f"MLflow URI {uri} is not models:/NAME/VERSION, models:/NAME@ALIAS or runs:/RUN_ID/PATH"
        )
    client = mlflow.MlflowClient(tracking_uri=server, registry_uri=server)
    name, version, alias = models["name"], models["version"], models["alias"]
    if alias is not None:
        found = client.get_model_version_by_alias(name, alias)
    elif version is not None and version.isdigit():
        found = client.get_model_version(name, version)
    else:
        raise BadInput(
            f"MLflow URI {uri}: give a version number (models:/{name}/3) or an alias (models:/{name}@champion)"
        )
    # Download the version that was resolved, so a moving alias cannot change it in between.
    return f"models:/{name}/{found.version}", found.run_id or None


def _bad_uri(uri: str, server: str, error: Exception) -> BadInput:
    """One line for an MlflowException: unreachable server, or a URI that names nothing there."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if _looks_unreachable(message):
        return _unreachable(uri, server, error)
    code = getattr(error, "error_code", "")
    if code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE", "ENDPOINT_NOT_FOUND"):
        return BadInput(
            f"MLflow URI {uri} does not resolve on MLFLOW_TRACKING_URI={server}: {message}"
            " (check the model name, version or alias, run id and artifact path)"
        )
    return BadInput(f"MLflow could not fetch {uri} from MLFLOW_TRACKING_URI={server}: {message}")


def _looks_unreachable(message: str) -> bool:
    """Whether mlflow's message is a connection failure it wrapped (refused, timed out, DNS)."""
    markers = (
        "Max retries exceeded",
        "Connection refused",
        "ConnectionError",
        "timed out",
        "Failed to resolve",
    )
    return any(marker in message for marker in markers)


def _unreachable(uri: str, server: str, error: Exception) -> BadInput:
    """The message for a tracking server that does not answer."""
    return BadInput(
        f"cannot reach the MLflow tracking server MLFLOW_TRACKING_URI={server} to resolve {uri}"
        f" ({type(error).__name__}): check that the server runs and the URI is right"
    )


@contextmanager
def _client_env() -> Iterator[None]:
    """Fail fast on an unreachable server for this call (no retries, a short timeout, no telemetry).

    mlflow reads these at each request; a value the user set is kept.
    """
    saved = {key: os.environ.get(key) for key in CLIENT_ENV}
    for key, value in CLIENT_ENV.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def read_mlmodel(root: Path, source: str) -> dict[str, Any]:
    """The `MLmodel` file of the model folder `root`, read as plain YAML (never unpickled)."""
    path = root / "MLmodel"
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BadInput(f"the MLmodel file of {source} is not valid YAML: {first}") from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("flavors"), dict):
        raise BadInput(f"the MLmodel file of {source} has no flavors mapping: is it an MLflow model?")
    return loaded


def describe(mlmodel: dict[str, Any], root: Path, source: str, run_id: str | None) -> MlflowModel:
    """Pick the accepted flavor of `mlmodel` and the model file it names under `root`."""
    flavors: dict[str, Any] = mlmodel["flavors"]
    accepted = [name for name in ACCEPTED_FLAVORS if isinstance(flavors.get(name), dict)]
    if not accepted:
        named = ", ".join(sorted(flavors)) or "none"
        raise BadInput(f"MLflow model {source}: flavor(s) {named} need pickle to load; {ACCEPTED_MESSAGE}")
    kind: Literal["xgboost", "onnx"] = "xgboost" if accepted[0] == "xgboost" else "onnx"
    flavor = flavors[kind]
    artifact = _model_file(flavor, kind, root, source)
    return MlflowModel(
        artifact=artifact,
        format=kind,
        flavor=dict(flavor),
        source=source,
        run_id=run_id,
        model_uuid=_optional_str(mlmodel.get("model_uuid")),
        signature_inputs=signature_inputs(mlmodel),
        mlflow_version=_optional_str(mlmodel.get("mlflow_version")),
    )


def _model_file(flavor: dict[str, Any], kind: str, root: Path, source: str) -> Path:
    """The file the flavor's `data` names, checked to be inside `root`, present and not a pickle."""
    data = flavor.get("data")
    if not isinstance(data, str) or not data:
        raise BadInput(f"MLflow model {source}: the {kind} flavor in MLmodel names no data file")
    artifact = (root / data).resolve()
    if not artifact.is_relative_to(root.resolve()):
        raise BadInput(f"MLflow model {source}: the {kind} flavor's data {data!r} points outside the model")
    if artifact.suffix.lower() in PICKLE_SUFFIXES:
        raise BadInput(f"MLflow model {source}: its {kind} model {data} is pickled; {ACCEPTED_MESSAGE}")
    if kind == "xgboost":
        declared = str(flavor.get("model_format") or artifact.suffix.lstrip(".")).lower()
        if declared not in XGBOOST_FORMATS:
            raise BadInput(
                f"MLflow model {source}: xgboost model format {declared!r} is not one of"
                f" {', '.join(XGBOOST_FORMATS)} (a pickled model cannot be imported)"
            )
    if not artifact.is_file():
        raise BadInput(f"MLflow model {source}: MLmodel names {data} but the model has no such file")
    return artifact


def signature_inputs(mlmodel: dict[str, Any]) -> list[str] | None:
    """Input column names from the MLmodel signature; None without one or with unnamed inputs."""
    signature = mlmodel.get("signature")
    raw = signature.get("inputs") if isinstance(signature, dict) else None
    if raw is None:
        return None
    try:
        inputs = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        return None
    if not isinstance(inputs, list) or not inputs:
        return None
    names = [item.get("name") for item in inputs if isinstance(item, dict)]
    if len(names) != len(inputs) or not all(isinstance(name, str) and name for name in names):
        return None
    return [str(name) for name in names]


def _optional_str(value: object) -> str | None:
    """`value` as a string, or None when absent or empty."""
    return str(value) if value not in (None, "") else None
