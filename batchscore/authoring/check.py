"""`batchscore pipelines validate`: a pipeline's YAML, features module and suites agree.

The YAML must load; the features module must declare a `FEATURE_SET` over the YAML's dataset
and entity key; the three suites must load with every expectation; the features suite must
declare exactly the key and the feature names, and the scores suite the columns the model's
task publishes. Each problem raises `BadInput` (or `ConfigError` for the YAML) naming the file.
"""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path

from batchscore.authoring.expectations import output_key_type, scores_columns
from batchscore.errors import BadInput
from batchscore.quality.suites import Suite, SuiteError, load_suite
from batchscore.settings import REPO_ROOT, PipelineSettings, load_pipeline, pipeline_files
from features import FeatureSet, load_feature_set

STAGES = ("raw", "features", "scores")


def check_pipeline(name: str, pipelines_dir: Path, root: Path = REPO_ROOT) -> list[str]:
    """One OK line per check passed; raises on the first problem."""
    path = pipelines_dir / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(p.stem for p in pipeline_files(pipelines_dir)) or "none"
        raise BadInput(f"no pipeline {name!r}: {path} does not exist (known: {known})")
    pipeline = load_pipeline(path)
    lines = [f"OK {path}: valid pipeline settings (task {pipeline.model.task})"]
    feature_set = load_features(pipeline.features, root)
    lines.append(check_feature_set(pipeline, feature_set))
    suites = {stage: load_stage_suite(root / "expectations" / name / f"{stage}.json") for stage in STAGES}
    lines += [f"OK {s.path}: {len(s.expectations)} expectations loaded" for s in suites.values()]
    lines.append(check_columns(suites, pipeline, feature_set))
    return lines


def load_features(module: str, root: Path) -> FeatureSet:
    """The module's `FEATURE_SET`: imported from the repository, or loaded from `root/features/`."""
    try:
        if root.resolve() == REPO_ROOT:
            return load_feature_set(module)
        return _feature_set_from_file(root / "features" / f"{module.removeprefix('features.')}.py")
    except ModuleNotFoundError as exc:
        raise BadInput(f"features module {module} does not exist: {exc}") from None
    except (ImportError, SyntaxError, TypeError, NameError, AttributeError) as exc:
        raise BadInput(f"features module {module} does not load: {' '.join(str(exc).split())}") from None


def _feature_set_from_file(path: Path) -> FeatureSet:
    if not path.is_file():
        raise ModuleNotFoundError(f"no file {path}")
    spec = importlib.util.spec_from_file_location(f"_batchscore_authoring_{uuid.uuid4().hex}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    feature_set = getattr(module, "FEATURE_SET", None)
    if not isinstance(feature_set, FeatureSet):
        raise TypeError(f"{path} must define FEATURE_SET = FeatureSet(...)")
    return feature_set


def check_feature_set(pipeline: PipelineSettings, feature_set: FeatureSet) -> str:
    dataset = pipeline.dataset
    if feature_set.source_dataset != dataset.name:
        raise BadInput(
            f"{pipeline.features}: source_dataset is {feature_set.source_dataset!r} but the pipeline "
            f"reads dataset {dataset.name!r}"
        )
    if feature_set.entity_key != dataset.entity_key:
        raise BadInput(
            f"{pipeline.features}: entity_key is {feature_set.entity_key!r} but the pipeline's "
            f"dataset.entity_key is {dataset.entity_key!r}"
        )
    if not feature_set.features:
        raise BadInput(f"{pipeline.features}: FEATURE_SET declares no features")
    duplicates = sorted({n for n in feature_set.names if feature_set.names.count(n) > 1})
    if duplicates:
        raise BadInput(f"{pipeline.features}: feature names repeat: {', '.join(duplicates)}")
    return (
        f"OK {pipeline.features}: {len(feature_set.features)} features over "
        f"{dataset.name} keyed by {dataset.entity_key}"
    )


def load_stage_suite(path: Path) -> Suite:
    try:
        return load_suite(path)
    except SuiteError as exc:
        raise BadInput(" ".join(str(exc).split())) from None


def declared_columns(suite: Suite) -> set[str]:
    """The suite's contract columns; its exact column-set expectation, when it has one, must agree."""
    columns = set(suite.schema)
    for expectation in suite.expectations:
        config = expectation.configuration
        if config.type == "expect_table_columns_to_match_set" and set(config.kwargs["column_set"]) != columns:
            raise BadInput(f"{suite.path}: expect_table_columns_to_match_set disagrees with meta.schema")
    return columns


def check_columns(suites: dict[str, Suite], pipeline: PipelineSettings, feature_set: FeatureSet) -> str:
    key = pipeline.dataset.entity_key
    raw = declared_columns(suites["raw"])
    if key not in raw:
        raise BadInput(f"{suites['raw'].path}: the raw contract does not declare the entity key {key!r}")
    _same(
        suites["features"], declared_columns(suites["features"]), {key, *feature_set.names}, "key + features"
    )
    wanted = set(scores_columns(key, pipeline.model.task, list(pipeline.model.classes)))
    _same(
        suites["scores"],
        declared_columns(suites["scores"]),
        wanted,
        f"a {pipeline.model.task} model's scores",
    )
    _check_key_types(suites, key)
    return (
        f"OK columns: features suite = {key} + {len(feature_set.names)} features; scores suite fits the task"
    )


def _check_key_types(suites: dict[str, Suite], key: str) -> None:
    """An integer raw key is published as int64, a string one as a string."""
    raw_type = suites["raw"].schema[key]
    if raw_type != "string" and not raw_type.startswith(("int", "uint")):
        return
    published = output_key_type("string" if raw_type == "string" else "integer")
    for stage in ("features", "scores"):
        declared = suites[stage].schema[key]
        if declared != published:
            raise BadInput(
                f"{suites[stage].path}: the key {key} is declared {declared}, but a {raw_type} raw key "
                f"is published as {published}"
            )


def _same(suite: Suite, found: set[str], wanted: set[str], what: str) -> None:
    if found != wanted:
        missing, extra = sorted(wanted - found), sorted(found - wanted)
        raise BadInput(
            f"{suite.path}: columns do not match {what}: missing {', '.join(missing) or 'none'}; "
            f"extra {', '.join(extra) or 'none'}"
        )
