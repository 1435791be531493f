"""What one scoring pass writes besides its scores: which partitions make it reusable, its
reason codes (`explain:`) and the manifests that make a rerun reuse it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from batchscore.models.inference import ModelRef
from batchscore.models.reasons import ExplainSpec, check_explainable
from batchscore.settings import Settings
from batchscore.storage.lake import Lake
from jobs.reuse import write_manifest


def pass_outputs(settings: Settings, lake: Lake, finals: dict[int, Path], run_date: date) -> list[Path]:
    """The partitions a pass writes: one per model, and the champion's reasons with `explain:`
    (a pass is reused only when all of them are there)."""
    outputs = [*finals.values()]
    if settings.pipeline.explain is not None:
        champion = next(iter(finals))
        outputs.append(lake.reasons_partition(settings.pipeline.name, champion, run_date))
    return outputs


def explain_of(
    settings: Settings, lake: Lake, champion: ModelRef, run_date: date
) -> tuple[ExplainSpec, Path] | None:
    """The reason codes to compute with the champion's scores, and where they go (None: off)."""
    explain = settings.pipeline.explain
    if explain is None:
        return None
    spec = ExplainSpec(explain.top_k, approx=explain.method == "approx")
    check_explainable(champion, spec)
    return spec, lake.reasons_partition(settings.pipeline.name, champion.version, run_date)


def manifest_writer(
    fingerprint: str, result_of: Callable[[dict[str, Any]], dict[str, Any]]
) -> Callable[[list[Path], dict[str, Any]], None]:
    """Writes the pass's fingerprint and result into every staged partition (scores, reasons)
    before the commit."""

    def write(stagings: list[Path], scored: dict[str, Any]) -> None:
        result = result_of(scored)
        for staging in stagings:
            write_manifest(staging, fingerprint, result)

    return write
