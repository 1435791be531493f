"""`batchscore pipelines new`: profile a raw partition and write a pipeline's files for review.

Everything is checked before anything is written: the request, the partition, the key and
the label, then the generated files themselves, staged in a temporary folder (the YAML loads,
the features module loads, the suites load with every expectation, `check_pipeline` agrees,
and the raw suite passes on the partition it was inferred from). Only then are they published,
each atomically: the expectations folder, the features module, and the YAML last, so the
platform never discovers a pipeline whose other files are missing.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, get_args

import features as features_package
from batchscore.authoring.check import check_pipeline, load_stage_suite
from batchscore.authoring.design import FeaturePlan, plan_features, render_features_module
from batchscore.authoring.expectations import features_suite, output_key_type, raw_suite, scores_suite
from batchscore.authoring.pipeline_yaml import label_choice, render_pipeline_yaml
from batchscore.authoring.profile import (
    DISTINCT_LIMIT,
    PartitionProfile,
    choose_partition,
    profile_table,
    read_partition,
)
from batchscore.errors import BadInput
from batchscore.settings import IDENTIFIER, REPO_ROOT, Task
from batchscore.storage.lake import Lake, write_bytes_atomic

if TYPE_CHECKING:
    import pyarrow as pa

TASKS: tuple[str, ...] = get_args(Task)
CLASS_NAME = r"^[a-z0-9][a-z0-9_]{0,40}$"


@dataclass(frozen=True)
class Targets:
    """Where a pipeline's files go."""

    pipeline: Path
    features: Path
    expectations: Path

    @classmethod
    def for_name(cls, name: str, pipelines_dir: Path, root: Path) -> Targets:
        return cls(
            pipelines_dir / f"{name}.yaml", root / "features" / f"{name}.py", root / "expectations" / name
        )

    def contents(self, yaml_text: str, module: str, suites: dict[str, str]) -> dict[Path, str]:
        return {
            self.pipeline: yaml_text,
            self.features: module,
            **{self.expectations / f"{stage}.json": text for stage, text in suites.items()},
        }


@dataclass(frozen=True)
class NewPipeline:
    """What `new_pipeline` wrote and inferred."""

    name: str
    dataset: str
    dt: date
    rows: int
    task: str
    classes: list[str]
    features: list[str]
    skipped: list[tuple[str, str]]
    files: list[Path]
    checks: list[str]


def new_pipeline(
    name: str,
    dataset: str,
    entity_key: str,
    *,
    lake: Lake,
    pipelines_dir: Path,
    root: Path = REPO_ROOT,
    dt: date | None = None,
    label: str | None = None,
    task: str = "binary",
) -> NewPipeline:
    """Profile `raw/<dataset>/dt=<dt>/` (the newest complete one by default) and write the files."""
    check_request(name, dataset, task)
    targets = Targets.for_name(name, pipelines_dir, root)
    refuse_existing(name, targets)
    day, partition = choose_partition(lake, dataset, dt)
    table = read_partition(partition)
    profile = profile_table(table, dataset, day, partition)
    check_key(profile, entity_key)
    check_label(profile, label, entity_key)
    check_values(profile)
    classes = classes_for(profile, label, task)
    plan = plan_features(profile, entity_key, label)
    if not plan.features:
        raise BadInput(f"{where(profile)} has no column usable as a feature besides {entity_key}")
    contents = targets.contents(
        render_pipeline_yaml(name, profile, entity_key, task, classes, label_choice(name, profile, label)),
        render_features_module(name, profile, entity_key, plan, label),
        render_suites(name, profile, entity_key, plan, task, classes),
    )
    checks = verify(name, targets, contents, table, profile)
    refuse_existing(name, targets)  # again: someone may have written one meanwhile
    publish(targets, contents)
    return NewPipeline(
        name,
        dataset,
        day,
        profile.rows,
        task,
        classes,
        plan.names,
        list(plan.skipped),
        list(contents),
        checks,
    )


def where(profile: PartitionProfile) -> str:
    return f"raw/{profile.dataset}/dt={profile.dt.isoformat()}"


def check_request(name: str, dataset: str, task: str) -> None:
    rule = "lowercase letters, digits and _, starting with a letter (^[a-z][a-z0-9_]{0,62}$)"
    if not re.match(IDENTIFIER, name):
        raise BadInput(f"pipeline name {name!r} is not an identifier: use {rule}")
    if name in vars(features_package):
        raise BadInput(f"pipeline name {name!r} is taken by the features package itself: pick another")
    if task not in TASKS:
        raise BadInput(f"unknown task {task!r}: use one of {', '.join(TASKS)}")
    if not re.match(IDENTIFIER, dataset):
        raise BadInput(f"dataset {dataset!r} is not an identifier: use {rule}")


def refuse_existing(name: str, targets: Targets) -> None:
    found = [p for p in (targets.pipeline, targets.features, targets.expectations) if p.exists()]
    if found:
        raise BadInput(
            f"pipeline {name!r} exists already ({', '.join(map(str, found))}): pick another name or "
            "remove those files"
        )


def _columns(profile: PartitionProfile) -> str:
    return ", ".join(profile.names)


def check_key(profile: PartitionProfile, key: str) -> None:
    column = profile.column(key)
    if column is None:
        raise BadInput(f"entity key column {key!r} is not in {where(profile)}; columns: {_columns(profile)}")
    if not re.match(IDENTIFIER, key):
        raise BadInput(f"entity key column {key!r} is not an identifier (^[a-z][a-z0-9_]{{0,62}}$)")
    if column.kind not in ("integer", "string"):
        raise BadInput(f"entity key column {key!r} is {column.arrow_type}: use an integer or string column")
    if column.nulls:
        raise BadInput(
            f"entity key column {key!r} has {column.nulls} null(s) in {where(profile)}: it must never be null"
        )
    if not column.unique:
        repeats = column.rows - column.nulls - (column.distinct_count or 0)
        raise BadInput(
            f"entity key column {key!r} is not unique in {where(profile)}: {repeats} repeated value(s)"
        )


def check_label(profile: PartitionProfile, label: str | None, key: str) -> None:
    if label is None:
        return
    if profile.column(label) is None:
        raise BadInput(f"--label column {label!r} is not in {where(profile)}; columns: {_columns(profile)}")
    if label in (key, "dt"):
        raise BadInput(f"--label column {label!r} cannot be the entity key or the partition date")
    if not re.match(IDENTIFIER, label):
        raise BadInput(f"--label column {label!r} is not an identifier (^[a-z][a-z0-9_]{{0,62}}$)")


def check_values(profile: PartitionProfile) -> None:
    for column in profile.columns:
        if column.non_finite:
            raise BadInput(
                f"column {column.name!r} holds {column.non_finite} NaN or infinite value(s) in {where(profile)}: "
                "the gates reject them; land null for a missing value"
            )


def classes_for(profile: PartitionProfile, label: str | None, task: str) -> list[str]:
    """The label's distinct values, as multiclass class names."""
    if task != "multiclass":
        return []
    if label is None:
        raise BadInput("a multiclass pipeline needs --label COLUMN: its distinct values become the classes")
    column = profile.column(label)
    assert column is not None
    if column.values is None:
        count = f"more than {DISTINCT_LIMIT}" if column.kind in ("integer", "string") else "no listable"
        raise BadInput(f"--label column {label!r} has {count} distinct values: not a multiclass label")
    classes = [str(v) for v in column.values]
    if len(classes) < 3:
        raise BadInput(
            f"--label column {label!r} has {len(classes)} distinct value(s) ({', '.join(classes)}); "
            "multiclass needs at least 3 (use --task binary)"
        )
    bad = [c for c in classes if not re.match(CLASS_NAME, c)]
    if bad:
        raise BadInput(f"--label column {label!r}: class names must match {CLASS_NAME}, got {', '.join(bad)}")
    return classes


def render_suites(
    name: str, profile: PartitionProfile, key: str, plan: FeaturePlan, task: str, classes: list[str]
) -> dict[str, str]:
    import json

    suites = {
        "raw": raw_suite(name, profile, key),
        "features": features_suite(name, profile, key, plan),
        "scores": scores_suite(name, key, task, classes, output_key_type(profile.column(key) or "int64")),
    }
    return {stage: json.dumps(suite, indent=2, ensure_ascii=False) + "\n" for stage, suite in suites.items()}


def verify(
    name: str, targets: Targets, contents: dict[Path, str], table: pa.Table, profile: PartitionProfile
) -> list[str]:
    """Stage the files in a temporary folder and check them as `pipelines validate` and the raw gate do."""
    from batchscore.quality.validation import validate_table

    with tempfile.TemporaryDirectory(prefix="batchscore-new-") as tmp:
        staged = Targets.for_name(name, Path(tmp) / "pipelines", Path(tmp))
        mapping = {targets.pipeline: staged.pipeline, targets.features: staged.features}
        for path, text in contents.items():
            target = mapping.get(path, staged.expectations / path.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        checks = [
            line.replace(str(staged.pipeline), str(targets.pipeline)).replace(
                str(staged.expectations), str(targets.expectations)
            )
            for line in check_pipeline(name, staged.pipeline.parent, Path(tmp))
        ]
        outcome = validate_table(
            table,
            load_stage_suite(staged.expectations / "raw.json"),
            pipeline=name,
            dataset=profile.dataset,
            stage="raw",
            partition=str(profile.partition),
            report_dir=Path(tmp) / "report",
            raise_on_failure=False,
            workers=1,
        )
    if not outcome.success:
        raise BadInput(
            f"the inferred raw suite fails on {where(profile)} (please report): {outcome.summary()}"
        )
    return [
        *checks,
        f"OK raw suite passes on {where(profile)}: {outcome.passed} of {outcome.evaluated} expectations",
    ]


def publish(targets: Targets, contents: dict[Path, str]) -> None:
    """Expectations folder (one rename), features module, YAML last; undone if one fails."""
    folder = targets.expectations
    staging = folder.parent / f".{folder.name}.{uuid.uuid4().hex}.tmp"
    written: list[Path] = []
    try:
        staging.mkdir(parents=True)
        for path, text in contents.items():
            if path.parent == folder:
                write_bytes_atomic(staging / path.name, text.encode())
        os.rename(staging, folder)
        written.append(folder)
        for path in (targets.features, targets.pipeline):
            write_bytes_atomic(path, contents[path].encode())
            written.append(path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for path in written:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise
