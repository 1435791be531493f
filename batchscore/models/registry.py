"""The model registry: versioned folders in the lake, aliases with an append-only history.

    models/<model>/versions/<N>/{model.ubj, model.json, model.onnx, reference.parquet,
                                 metadata.json, model_card.md}
    models/<model>/aliases.json           current alias -> version
    models/<model>/alias_history.jsonl    every alias move: when, from, to, why, evidence

Artifacts are data (XGBoost UBJ/JSON, ONNX, Parquet), never pickle; each is stored with
its SHA-256 in metadata.json and verified before it is used. Registering a version and
moving an alias hold an exclusive lock on the model folder; alias moves are
compare-and-swap (`expected_current`), so of two writers that read the same champion and
both try to replace it, one wins and the other gets a RegistryError.

**The alias as it stood on day D** (what a run for logical date D scores with) is the
target of the alias's last move made *before the end of day D* (before D+1 00:00 UTC). A
day before the alias's first move resolves to the first version the alias ever pointed at:
there was no model then, and the first one is the closest to "the model of that day".
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from batchscore.errors import PermanentFailure
from batchscore.models.metadata import BadModelMetadata, ModelMetadata
from batchscore.storage.lake import Lake, file_sha256, write_bytes_atomic

BACKEND_ARTIFACTS = {"xgboost": "model.ubj", "onnx": "model.onnx"}
"""The artifact each scoring backend loads."""


class RegistryError(PermanentFailure, RuntimeError):
    """A model version or alias is missing, or an artifact fails verification."""


class AliasConflict(RegistryError):
    """Another writer moved the alias between our read and our write (compare-and-swap lost)."""


def now() -> datetime:
    """The registry's clock (UTC); every alias move is stamped with it."""
    return datetime.now(UTC)


def end_of_day(day: date) -> datetime:
    """The first instant after `day` (UTC): moves before it count for runs of `day`."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: int
    path: Path
    meta: ModelMetadata
    """the version's metadata.json, validated when read"""

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The whole metadata document (read-only), for what is shown rather than computed on."""
        return self.meta.document

    @property
    def feature_set_hash(self) -> str:
        return self.meta.feature_set.hash

    @property
    def task(self) -> str:
        """binary, regression or multiclass (versions from before task types are binary)."""
        return self.meta.task

    @property
    def feature_order(self) -> tuple[str, ...]:
        """The model's input columns in its own order (an imported model may permute the set's)."""
        return self.meta.feature_order

    def backend(self, preferred: str) -> str:
        """The pipeline's backend when this version has its artifact, else the one it has
        (an imported ONNX model has no XGBoost artifact, and the other way round)."""
        artifacts = self.meta.artifacts
        if BACKEND_ARTIFACTS[preferred] in artifacts:
            return preferred
        for backend, name in BACKEND_ARTIFACTS.items():
            if name in artifacts:
                return backend
        raise RegistryError(
            f"{self.model} v{self.version} has no model artifact ({', '.join(sorted(artifacts))})"
        )

    def artifact(self, name: str) -> Path:
        """Path of an artifact after checking its SHA-256 against the metadata."""
        record = self.meta.artifacts.get(name)
        if record is None:
            raise RegistryError(f"{self.model} v{self.version} has no artifact {name!r}")
        expected = record.sha256
        path = self.path / name
        if not path.is_file():
            raise RegistryError(f"{self.model} v{self.version}: artifact {path} is missing")
        actual = file_sha256(path)
        if actual != expected:
            raise RegistryError(
                f"{self.model} v{self.version}: artifact {name} fails its checksum "
                f"(expected {expected[:12]}…, found {actual[:12]}…); refusing to load it"
            )
        return path

    def verify(self) -> None:
        """Check every artifact's SHA-256; raises RegistryError on the first that fails."""
        for name in sorted(self.meta.artifacts):
            self.artifact(name)


@dataclass(frozen=True)
class Resolution:
    """Which version a run uses, and why (recorded in `scoring_runs.model_source`)."""

    version: ModelVersion
    source: str


class ModelRegistry:
    """Versions and aliases of one model, stored under the lake's `models/<model>/`."""

    def __init__(self, lake: Lake, model: str):
        self.model = model
        self.lake = lake
        self.root = lake.models_dir(model)
        lake.pull_tree(self.root)  # an S3 lake: bring the registry's current state into the working copy

    def _push(self) -> None:
        """Mirror the registry to an S3 lake: version files first, the aliases last."""
        self.lake.push_tree(self.root, last=("alias_history.jsonl", "aliases.json"))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def versions(self) -> list[int]:
        folder = self.root / "versions"
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())

    def get(self, version: int) -> ModelVersion:
        path = self.root / "versions" / str(version)
        meta_path = path / "metadata.json"
        if not meta_path.is_file():
            known = ", ".join(map(str, self.versions())) or "none"
            raise RegistryError(f"model {self.model} has no version {version} (known: {known})")
        try:
            document = json.loads(meta_path.read_text())
        except ValueError as exc:
            raise BadModelMetadata(f"{meta_path}: not valid JSON ({exc})") from exc
        return ModelVersion(self.model, version, path, ModelMetadata.from_json(document, str(meta_path)))

    def register(self, artifacts_dir: Path, metadata: dict[str, Any]) -> ModelVersion:
        """Copy the artifacts in as the next version, with checksums, in one rename."""
        files = sorted(p for p in artifacts_dir.iterdir() if p.is_file())
        if not files:
            raise RegistryError(f"no artifacts in {artifacts_dir}")
        with self._locked():
            version = max(self.versions(), default=0) + 1
            staging = self.root / "versions" / f".staging-{uuid.uuid4().hex}"
            staging.mkdir(parents=True)
            try:
                for src in files:
                    shutil.copyfile(src, staging / src.name)
                full = {
                    **metadata,
                    "model": self.model,
                    "version": version,
                    "artifacts": {
                        p.name: {"sha256": file_sha256(staging / p.name), "bytes": p.stat().st_size}
                        for p in files
                    },
                }
                ModelMetadata.from_json(full, f"metadata of {self.model} v{version}")  # refuse before writing
                (staging / "metadata.json").write_text(json.dumps(full, indent=2, sort_keys=True))
                (staging / "model_card.md").write_text(model_card(full))
                staging.rename(self.root / "versions" / str(version))
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            self._push()
        return self.get(version)

    def aliases(self) -> dict[str, int]:
        path = self.root / "aliases.json"
        return {k: int(v) for k, v in json.loads(path.read_text()).items()} if path.is_file() else {}

    def resolve(self, alias: str) -> ModelVersion:
        """The version an alias points at now."""
        version = self.aliases().get(alias)
        if version is None:
            raise RegistryError(
                f"model {self.model} has no {alias!r} alias; train one with `batchscore train`"
            )
        return self.get(version)

    def history(self, alias: str | None = None) -> list[dict[str, Any]]:
        """Every alias move, oldest first (only those of `alias` when given)."""
        path = self.root / "alias_history.jsonl"
        if not path.is_file():
            return []
        moves = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [m for m in moves if alias is None or m["alias"] == alias]

    def version_as_of(self, alias: str, day: date) -> tuple[int, str]:
        """The version `alias` pointed at on `day` and how that was found (see the module doc)."""
        moves = self.history(alias)
        if not moves:
            raise RegistryError(
                f"model {self.model} has no {alias!r} alias; train one with `batchscore train`"
            )
        cutoff = end_of_day(day)
        before = [m for m in moves if datetime.fromisoformat(m["at"]) < cutoff]
        if before:
            return int(before[-1]["to_version"]), f"alias:{alias}@{day.isoformat()}"
        return int(moves[0]["to_version"]), f"alias:{alias}@first"

    def resolve_for_day(self, alias: str, day: date) -> Resolution:
        """The version a run for logical date `day` scores with: the alias as it stood that day."""
        version, source = self.version_as_of(alias, day)
        return Resolution(self.get(version), source)

    def previous_version(self, alias: str) -> int:
        """The version `alias` pointed at before its current one (what a rollback returns to)."""
        moves = self.history(alias)
        current = self.aliases().get(alias)
        for move in reversed(moves):
            if move["to_version"] == current and move["from_version"] is not None:
                return int(move["from_version"])
        raise RegistryError(f"alias {alias!r} of {self.model} has no previous version to return to")

    def rollback(self, alias: str, *, reason: str, evidence: dict[str, Any] | None = None) -> dict[str, Any]:
        """Point `alias` back at its previous version, as a compare-and-swap move."""
        current = self.aliases().get(alias)
        target = self.previous_version(alias)
        return self.move_alias(
            alias,
            target,
            reason=f"rollback: {reason}",
            expected_current=current,
            evidence={**(evidence or {}), "rolled_back_from": current},
        )

    def move_alias(
        self,
        alias: str,
        version: int,
        *,
        reason: str,
        expected_current: int | str | None = "any",
        evidence: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Point `alias` at `version` and append the move to the history.

        `expected_current` makes the move a compare-and-swap: it fails if another writer
        moved the alias first.
        """
        self.get(version)
        with self._locked():
            current = self.aliases()
            previous = current.get(alias)
            if expected_current != "any" and previous != expected_current:
                raise AliasConflict(
                    f"alias {alias!r} of {self.model} moved concurrently: expected "
                    f"{expected_current}, found {previous}"
                )
            event = {
                "at": now().isoformat(),
                "alias": alias,
                "from_version": previous,
                "to_version": version,
                "reason": reason,
                "evidence": evidence or {},
            }
            with (self.root / "alias_history.jsonl").open("a") as handle:
                handle.write(json.dumps(event, sort_keys=True) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            write_bytes_atomic(
                self.root / "aliases.json",
                json.dumps({**current, alias: version}, indent=2, sort_keys=True).encode(),
            )
            self._push()
        return event


TASK_OUTPUTS = {
    "binary": "a probability in [0, 1]",
    "regression": "a predicted value",
    "multiclass": "the top class's probability and the class",
}


def source_lines(meta: dict[str, Any]) -> list[str]:
    """Where an imported model came from: the file or MLflow URI, its checksum, who, when, why,
    the inputs it takes and the metrics its team handed in."""
    source = meta["source"]
    where = source.get("uri") or source.get("path", "?")
    run = f", MLflow run `{source['run_id']}`" if source.get("run_id") else ""
    features = meta.get("feature_set", {})
    order = meta.get("feature_order")
    metrics = meta.get("metrics", {})
    window = meta.get("training_window")
    lines = [
        "## Source",
        "",
        f"- trained outside batchscore; imported from `{where}`{run} ({source.get('format', '?')}, "
        f"SHA-256 {str(source.get('sha256', '?'))[:16]}…)",
        f"- imported by {meta.get('imported_by', '?')} at {meta.get('imported_at', '?')}"
        + (f": {meta['note']}" if meta.get("note") else ""),
        f"- trained on {window['start']} .. {window['end']}" if window else "- training window: not declared",
        f"- drift reference: {meta.get('reference', {}).get('source', '?')}",
        "",
        "## Inputs",
        "",
        f"- feature set `{features.get('name', '?')}` v{features.get('version', '?')}, "
        f"hash `{str(features.get('hash', '?'))[:16]}`: " + ", ".join(features.get("features", [])),
        f"- the model takes them in its own order: {', '.join(order)}"
        if order
        else "- in the feature set's order",
        "",
        "## Metrics (as handed in)",
        "",
    ]
    flat = {k: v for k, v in sorted(metrics.items()) if not isinstance(v, dict)}
    lines += [f"- {k}: {v}" for k, v in flat.items()] or ["- none given (`--metrics FILE`)"]
    return lines


def model_card(meta: dict[str, Any]) -> str:
    """A human-readable card for one version: what it predicts, on what data, how well, and
    where not to trust it. Generated from the version's metadata, so it cannot disagree."""
    task = str(meta.get("task", "binary"))
    made = (
        f"- format {meta['source'].get('format', '?')}; artifacts: "
        if "source" in meta
        else f"- XGBoost {meta.get('xgboost_version', '?')}; artifacts: "
    )
    lines = [
        f"# Model card: {meta.get('model')} v{meta.get('version')}",
        "",
        "## What it predicts",
        "",
        str(meta.get("predicts", "(not recorded)")),
        "",
        f"- pipeline: `{meta.get('pipeline', '?')}`; label: `{meta.get('label', '?')}`"
        + (" (binary, 1 = event)" if task == "binary" else f"; task: {task}"),
        f"- output: {TASK_OUTPUTS.get(task, '?')} per entity and day"
        + (" (XGBoost `binary:logistic`)" if task == "binary" and "source" not in meta else ""),
        f"- created at {meta.get('created_at', '?')} from code version `{meta.get('code_version', '?')}`",
        made + ", ".join(f"`{name}`" for name in sorted(meta.get("artifacts", {}))),
        "",
        *(source_lines(meta) if "source" in meta else trained_lines(meta)),
        "",
        "## Limitations",
        "",
        "- Trained on the window above only: behaviour outside it (new products, prices, seasons) is "
        "unknown; the nightly drift gate compares every day with this version's training reference.",
        "- Scores are probabilities calibrated on the holdout period; they are not comparable across "
        "versions without checking calibration."
        if task != "regression"
        else "- Predicted values are not comparable across versions without checking their error on recent labels.",
        "- Refuses to score features from any other feature-set hash.",
        "- Segments with few holdout rows have noisy metrics; do not read small differences there.",
    ]
    return "\n".join(lines) + "\n"


def trained_lines(meta: dict[str, Any]) -> list[str]:
    """Data and holdout metrics of a version `batchscore train` or the retrain DAG produced."""
    metrics = meta.get("metrics", {})
    window = meta.get("training_window", {})
    features = meta.get("feature_set", {})
    lines = [
        "## Data",
        "",
        f"- labelled days {window.get('start', '?')} .. {window.get('end', '?')}, "
        f"labels landed by {window.get('labels_landed_by', '?')}",
        f"- point in time: features of each day joined with that day's labels only; "
        f"{metrics.get('train_rows', '?')} training rows, {metrics.get('holdout_rows', '?')} holdout rows "
        f"(holdout split by entity), base rate {metrics.get('base_rate', '?')}",
        f"- feature set `{features.get('name', '?')}` v{features.get('version', '?')}, "
        f"hash `{str(features.get('hash', '?'))[:16]}`: " + ", ".join(features.get("features", [])),
        "- input partitions and their SHA-256: "
        + ", ".join(f"`{k}` {str(v)[:12]}" for k, v in sorted(meta.get("training_data", {}).items())),
        "",
        "## Metrics (holdout)",
        "",
        "| segment | rows | AUC | log loss | calibration error |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| all | {metrics.get('holdout_rows', '?')} | {metrics.get('holdout_auc', '?')} | "
        f"{metrics.get('holdout_logloss', '?')} | {metrics.get('holdout_calibration_error', '?')} |",
    ]
    for name, seg in sorted(meta.get("metrics_by_segment", {}).items()):
        lines.append(
            f"| {name} | {seg.get('rows', '?')} | {seg.get('auc', '?')} | {seg.get('logloss', '?')} | "
            f"{seg.get('calibration_error', '?')} |"
        )
    return lines
