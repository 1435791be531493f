"""Train an XGBoost model on labelled feature history and register it (UBJ, JSON, ONNX).

The pipeline's first (or next) model: the core lives in `batchscore.models.training`; this job promotes
the new version when there is no champion yet, or when asked.

    python -m jobs.train --pipeline churn --date 2026-11-21 [--promote]
"""

from __future__ import annotations

import sys
import time
from datetime import date
from typing import TYPE_CHECKING, Any

from batchscore.models.registry import ModelRegistry, ModelVersion
from batchscore.models.training import build_training_set, train_and_register
from batchscore.settings import Settings, load_settings
from batchscore.storage.lake import Lake

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def run(
    settings: Settings,
    end: date,
    *,
    promote: bool = False,
    spark: SparkSession | None = None,
) -> dict[str, Any]:
    """Train on the window ending at `end`, register the version, promote it when asked.

    The first version of a model always becomes the champion: there is nothing to compare with.
    """
    from batchscore.compute.spark import get_spark

    started = time.perf_counter()
    pipeline = settings.pipeline
    spark = spark or get_spark(settings.platform)
    data = build_training_set(settings, end, spark)
    version, _ = train_and_register(settings, end, data)
    registry = ModelRegistry(Lake(settings.platform.lake_url), pipeline.model.name)
    promoted = _promote_if_first_or_asked(registry, version, pipeline.model.alias, promote)
    return {
        "stage": "train",
        "model": version.model,
        "version": version.version,
        "promoted": promoted,
        "metrics": version.metadata["metrics"],
        "rows": len(data.frame),
        "seconds": round(time.perf_counter() - started, 3),
    }


def _promote_if_first_or_asked(
    registry: ModelRegistry, version: ModelVersion, alias: str, promote: bool
) -> bool:
    current = registry.aliases().get(alias)
    if current is None or promote:
        reason = "first model version" if current is None else "promoted at training time (--promote)"
        registry.move_alias(
            alias,
            version.version,
            reason=reason,
            expected_current=current,
            evidence=version.metadata["metrics"],
        )
        return True
    return False


def main(argv: list[str] | None = None) -> None:
    from jobs import print_result, stage_arguments

    parser = stage_arguments(__doc__.splitlines()[0])
    parser.add_argument("--promote", action="store_true", help="point the champion alias at the new version")
    args = parser.parse_args(argv)
    print_result(run(load_settings(args.pipeline), args.date, promote=args.promote))


if __name__ == "__main__":
    main(sys.argv[1:])
