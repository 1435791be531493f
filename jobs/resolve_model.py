"""Pin the model version of a run: the alias as it stood on the run's date, or an override.

A run for logical date D scores with the version its alias pointed at on D (see
`batchscore.models.registry` for the exact rule), so a backfill of D uses the model of the day.
The artifacts are verified (SHA-256) before the version is pinned. When they fail, the
pipeline's `model.fallback` decides: `fail` (default) stops the run; `previous_champion`
scores with the alias's previous version that verifies, alerts, and records a
`champion_fallback` event in `model_events`.

    python -m jobs.resolve_model --pipeline churn --date 2026-11-21 [--model-version 3]
"""

from __future__ import annotations

import sys
from datetime import date, datetime

from batchscore.models.pinned import PinnedModel
from batchscore.models.registry import (
    BACKEND_ARTIFACTS,
    ModelRegistry,
    ModelVersion,
    RegistryError,
    Resolution,
    end_of_day,
)
from batchscore.models.scoring_pass import challenger_of_day
from batchscore.settings import Settings, load_settings
from batchscore.storage.lake import Lake
from batchscore.storage.warehouse import open_warehouse
from batchscore.telemetry.alerts import send_alert


def verify_for_scoring(version: ModelVersion, backend: str) -> None:
    """The artifacts a run needs (model for the backend, drift reference) pass their checksums."""
    version.artifact(BACKEND_ARTIFACTS[version.backend(backend)])
    version.artifact("reference.parquet")


def previous_versions(registry: ModelRegistry, alias: str, failing: int, run_date: date) -> list[int]:
    """Versions the alias pointed at up to the run's day, most recent first, without the failing one."""
    cutoff = end_of_day(run_date)
    seen: list[int] = []
    for move in reversed([m for m in registry.history(alias) if datetime.fromisoformat(m["at"]) < cutoff]):
        for candidate in (move["to_version"], move["from_version"]):
            if candidate is not None and candidate != failing and candidate not in seen:
                seen.append(int(candidate))
    return seen


def resolve(settings: Settings, run_date: date, requested: int | None) -> tuple[Resolution, str | None]:
    """The pinned version and its source; the second item is the verification error a fallback
    recovered from (None when the first choice verified)."""
    pipeline = settings.pipeline
    registry = ModelRegistry(Lake(settings.platform.lake_url), pipeline.model.name)
    backend = pipeline.inference.backend
    if requested is not None:
        chosen = Resolution(registry.get(int(requested)), "param")
        verify_for_scoring(chosen.version, backend)  # an explicit choice never falls back
        return chosen, None
    chosen = registry.resolve_for_day(pipeline.model.alias, run_date)
    try:
        verify_for_scoring(chosen.version, backend)
        return chosen, None
    except RegistryError as exc:
        if pipeline.model.fallback != "previous_champion":
            raise
        error = str(exc)
    for candidate in previous_versions(registry, pipeline.model.alias, chosen.version.version, run_date):
        version = registry.get(candidate)
        try:
            verify_for_scoring(version, backend)
        except RegistryError:
            continue
        return Resolution(version, f"fallback:previous_champion(v{chosen.version.version} failed)"), error
    raise RegistryError(f"{error}; fallback: no previous {pipeline.model.alias} version verifies either")


def run(
    settings: Settings, run_date: date, requested: int | None = None, run_id: str = "manual"
) -> PinnedModel:
    """Pin the run's model: the champion alias as it stood on `run_date` (or `requested`), verified
    for scoring, with the challenger of the day."""
    pipeline = settings.pipeline
    resolution, recovered = resolve(settings, run_date, requested)
    version = resolution.version
    if recovered is not None:
        evidence = {"error": recovered, "source": resolution.source, "scored_with": version.version}
        send_alert(
            settings.platform.alert_webhook,
            f"batchscore {pipeline.name} {run_date.isoformat()}: champion failed verification, "
            f"scoring with previous champion v{version.version}",
            evidence,
        )
        open_warehouse(settings.platform.warehouse_url).record_event(
            pipeline.name,
            run_date,
            pipeline.model.name,
            version.version,
            "champion_fallback",
            "previous_champion",
            evidence,
            run_id,
        )
    registry = ModelRegistry(Lake(settings.platform.lake_url), pipeline.model.name)
    return PinnedModel(
        model_name=version.model,
        model_version=version.version,
        feature_set_hash=version.feature_set_hash,
        source=resolution.source,
        challenger_version=challenger_of_day(settings, registry, run_date),
    )


def main(argv: list[str] | None = None) -> None:
    from jobs import print_result, stage_arguments

    parser = stage_arguments(__doc__.splitlines()[0])
    parser.add_argument("--model-version", type=int, help="override the alias")
    args = parser.parse_args(argv)
    print_result(run(load_settings(args.pipeline), args.date, args.model_version).to_xcom())


if __name__ == "__main__":
    main(sys.argv[1:])
