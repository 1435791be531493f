"""One scoring pass, as the driver sees it: which model versions it scores (the champion, the
challenger of the day in shadow), the checks before it starts, what it writes besides its scores
(reason codes with `explain:`) and the fingerprint and manifests that make a rerun reuse it.
The Spark half that plans, launches and commits the tasks is `scoring_driver`; the worker half
is `scoring`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from batchscore.models.inference import ModelRef, ScoringError
from batchscore.models.reasons import ExplainSpec, check_explainable
from batchscore.models.registry import BACKEND_ARTIFACTS, ModelRegistry, ModelVersion, RegistryError
from batchscore.settings import Settings
from batchscore.storage.lake import Lake
from batchscore.storage.manifest import StageManifest
from batchscore.storage.reuse import code_hashes, digest, record_stage

log = logging.getLogger(__name__)

SCORING_STAGE = "jobs.score"
"""The score stage's module: the code that turns features into scores is everything it imports
(this module, the Spark driver and the workers included), found by `code_hashes`."""

OUTPUT_NEUTRAL_INFERENCE = frozenset({"batch_rows"})
"""Inference settings that change how fast scores come, never their values."""


@dataclass(frozen=True)
class ReasonCodes:
    """The champion's reason codes a pass computes with its scores, and the final partition
    they are committed to."""

    spec: ExplainSpec
    partition: Path


def model_ref(settings: Settings, version: ModelVersion) -> ModelRef:
    """Describe a model version for executors, after checking its artifact's checksum here."""
    backend = version.backend(settings.pipeline.inference.backend)
    artifact = version.artifact(BACKEND_ARTIFACTS[backend])
    return ModelRef(
        model=version.model,
        version=version.version,
        backend=backend,
        artifact_path=str(artifact),
        sha256=version.meta.artifacts[artifact.name].sha256,
        feature_names=version.feature_order,
        device=settings.pipeline.inference.device,
        task=version.task,
        classes=tuple(version.metadata.get("classes") or ()) if version.task == "multiclass" else (),
    )


def check_feature_set(version: ModelVersion, manifest: StageManifest, code_hash: str) -> None:
    """A model trained on feature set X refuses to score feature set Y."""
    trained_on = version.feature_set_hash
    built_with = manifest.feature_set_hash
    if not trained_on == built_with == code_hash:
        raise ScoringError(
            f"feature set mismatch: {version.model} v{version.version} was trained on {trained_on[:12]}…, "
            f"the features partition was built with {built_with[:12]}…, the code defines {code_hash[:12]}…; "
            "retrain the model or rebuild the features"
        )


def champion_of_day(settings: Settings, registry: ModelRegistry, run_date: date) -> int:
    """The champion alias's version as it stood on `run_date`: what a run of that day scores with
    when no version is pinned (the DAG pins it with `jobs.resolve_model`, by the same rule)."""
    return registry.version_as_of(settings.pipeline.model.alias, run_date)[0]


def challenger_of_day(settings: Settings, registry: ModelRegistry, run_date: date) -> int | None:
    """The challenger alias's version as it stood on `run_date`, or None (not configured or not set)."""
    alias = settings.pipeline.model.challenger_alias
    if alias is None:
        return None
    try:
        return registry.resolve_for_day(alias, run_date).version.version
    except RegistryError:
        log.info("no %r alias on %s for %s: no shadow scoring", alias, registry.model, run_date)
        return None


def resolve_challenger(
    registry: ModelRegistry,
    challenger_version: int | None,
    champion: int,
    manifest: StageManifest,
    code_hash: str,
) -> ModelVersion | None:
    """The challenger to shadow-score, or None (none pinned, same as the champion, or trained on
    another feature set: the champion is scored regardless, the reason is logged)."""
    if challenger_version is None:
        return None
    challenger = registry.get(challenger_version)
    if challenger.version == champion:
        log.info("challenger v%s is the champion: no shadow scoring", champion)
        return None
    try:
        check_feature_set(challenger, manifest, code_hash)
    except ScoringError as exc:
        log.warning("challenger not shadow-scored: %s", exc)
        return None
    return challenger


def scores_fingerprint(
    settings: Settings, features: StageManifest, features_checksum: str, refs: Sequence[ModelRef]
) -> str:
    """score: the features partition (its bytes and its manifest's fingerprint), every model scored
    (name, version, artifact checksum, backend, device asked for), the inference settings that
    change values, and the scoring code (the score stage's module and all it imports)."""
    pipeline = settings.pipeline
    inference = pipeline.inference.model_dump(exclude=set(OUTPUT_NEUTRAL_INFERENCE))
    return digest(
        {
            "stage": "score",
            "features_checksum": features_checksum,
            "features_fingerprint": features.fingerprint,
            "rows_in": features.rows,
            "models": [
                {
                    "model": r.model,
                    "version": r.version,
                    "backend": r.backend,
                    "sha256": r.sha256,
                    "features": list(r.feature_names),
                    "device": r.device,
                    "task": r.task,
                    "classes": list(r.classes),
                }
                for r in refs
            ],
            "inference": inference,
            "explain": pipeline.explain.model_dump() if pipeline.explain else None,
            "entity_key": pipeline.dataset.entity_key,
            "code": code_hashes([SCORING_STAGE]),
        }
    )


def pass_outputs(settings: Settings, lake: Lake, finals: dict[int, Path], run_date: date) -> list[Path]:
    """The partitions a pass writes: one per model, and the champion's reasons with `explain:`
    (a pass is reused only when all of them are there)."""
    outputs = [*finals.values()]
    if settings.pipeline.explain is not None:
        champion = next(iter(finals))
        outputs.append(lake.reasons_partition(settings.pipeline.name, champion, run_date))
    return outputs


def explain_of(settings: Settings, lake: Lake, champion: ModelRef, run_date: date) -> ReasonCodes | None:
    """The reason codes to compute with the champion's scores, and where they go (None: off)."""
    explain = settings.pipeline.explain
    if explain is None:
        return None
    spec = ExplainSpec(explain.top_k, approx=explain.method == "approx")
    check_explainable(champion, spec)
    return ReasonCodes(spec, lake.reasons_partition(settings.pipeline.name, champion.version, run_date))


def manifest_writer(
    fingerprint: str, result_of: Callable[[dict[str, Any]], dict[str, Any]]
) -> Callable[[list[Path], dict[str, Any]], None]:
    """Writes the pass's fingerprint and result into every staged partition (scores, reasons)
    before the commit."""

    def write(stagings: list[Path], scored: dict[str, Any]) -> None:
        result = result_of(scored)
        for staging in stagings:
            record_stage(staging, fingerprint, result)

    return write
