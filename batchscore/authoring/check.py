"""`batchscore pipelines validate`: a pipeline's YAML, features module and suites agree, and
(`validate_pipeline`) its features compile against the raw contract, its labels dataset is in
the lake with the columns it needs, and its champion (when there is one) was trained on its
feature set.

The YAML must load; the features module must declare a `FEATURE_SET` over the YAML's dataset
and entity key; the three suites must load with every expectation; the features suite must
declare exactly the key and the feature names, and the scores suite the columns the model's
task publishes. Every problem found is listed (`PipelineProblems`), each naming its file; a
YAML that does not load stops the checks (`ConfigError`).
"""

from __future__ import annotations

import importlib.util
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

from batchscore.authoring.expectations import output_key_type, scores_columns
from batchscore.errors import BadInput
from batchscore.quality.suites import Suite, SuiteError, load_suite
from batchscore.settings import REPO_ROOT, PipelineSettings, PlatformSettings, load_pipeline, pipeline_files
from features import FeatureSet, load_feature_set

STAGES = ("raw", "features", "scores")
T = TypeVar("T")
log = logging.getLogger(__name__)


class PipelineProblems(BadInput):
    """Every problem found in one pipeline's files, one line each."""

    def __init__(self, name: str, problems: list[str]):
        self.problems = problems
        listed = "\n".join(f"  {p}" for p in problems)
        super().__init__(
            problems[0] if len(problems) == 1 else f"{len(problems)} problems in {name}:\n{listed}"
        )


@dataclass
class Findings:
    """The checks passed (one OK line each) and the problems found so far."""

    passed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def load(self, step: Callable[[], T]) -> T | None:
        """The step's value, or None with its problem recorded."""
        try:
            return step()
        except BadInput as exc:
            self.problems.append(str(exc))
            return None

    def check(self, step: Callable[[], str]) -> None:
        line = self.load(step)
        if line is not None:
            self.passed.append(line)

    def lines(self, name: str) -> list[str]:
        """The OK lines; raises `PipelineProblems` listing every problem when there is one."""
        if self.problems:
            raise PipelineProblems(name, self.problems)
        return self.passed


@dataclass(frozen=True)
class Loaded:
    """What the static checks could load: the later checks run on what is there."""

    pipeline: PipelineSettings
    feature_set: FeatureSet | None
    suites: dict[str, Suite]


def check_pipeline(name: str, pipelines_dir: Path, root: Path = REPO_ROOT) -> list[str]:
    """The files agree: one OK line per check passed; raises listing every problem found."""
    found = Findings()
    static_checks(name, pipelines_dir, root, found)
    return found.lines(name)


def validate_pipeline(name: str, pipelines_dir: Path, root: Path, platform: PlatformSettings) -> list[str]:
    """`check_pipeline`, then what needs Spark and the lake: the features compiled on an empty
    frame of the raw contract, the labels dataset and the champion's feature names."""
    from batchscore.authoring.lake_checks import check_champion, check_labels
    from batchscore.storage.lake import Lake

    found = Findings()
    loaded = static_checks(name, pipelines_dir, root, found)
    if loaded.feature_set is not None and "raw" in loaded.suites:
        found.problems += compile_features(loaded.feature_set, loaded.suites["raw"], platform, found)
    lake = Lake(platform.lake_url, platform)
    found.check(lambda: check_labels(lake, loaded.pipeline))
    if loaded.feature_set is not None:
        feature_set = loaded.feature_set
        found.check(lambda: check_champion(lake, loaded.pipeline, feature_set))
    return found.lines(name)


def static_checks(name: str, pipelines_dir: Path, root: Path, found: Findings) -> Loaded:
    """The YAML (a problem there stops everything), the features module, the suites, their columns."""
    path = pipelines_dir / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(p.stem for p in pipeline_files(pipelines_dir)) or "none"
        raise BadInput(f"no pipeline {name!r}: {path} does not exist (known: {known})")
    pipeline = load_pipeline(path)
    found.passed.append(f"OK {path}: valid pipeline settings (task {pipeline.model.task})")
    feature_set = found.load(lambda: load_features(pipeline.features, root))
    if feature_set is not None:
        found.check(lambda: check_feature_set(pipeline, feature_set))
    suites: dict[str, Suite] = {}
    for stage in STAGES:
        suite = found.load(partial(load_stage_suite, root / "expectations" / name / f"{stage}.json"))
        if suite is not None:
            suites[stage] = suite
            found.passed.append(f"OK {suite.path}: {len(suite.expectations)} expectations loaded")
    problems = column_problems(suites, pipeline, feature_set)
    found.problems += problems
    if not problems and len(suites) == len(STAGES) and feature_set is not None:
        found.passed.append(
            f"OK columns: features suite = {pipeline.dataset.entity_key} + {len(feature_set.names)} "
            "features; scores suite fits the task"
        )
    return Loaded(pipeline, feature_set, suites)


def compile_features(
    feature_set: FeatureSet, raw: Suite, platform: PlatformSettings, found: Findings
) -> list[str]:
    """Each feature compiled on Spark against the raw contract; the problems found."""
    from batchscore.authoring.feature_compile import compile_problems
    from batchscore.compute.spark import get_spark

    try:
        spark = get_spark(platform, app_name="batchscore-validate")
    except Exception as exc:  # no Java, no cluster: the features cannot be compiled here
        return [f"Spark did not start, so the features were not compiled: {type(exc).__name__}: {exc}"]
    problems = [f"{raw.path}: {p}" for p in compile_problems(spark, feature_set, raw.schema)]
    if not problems:
        found.passed.append(
            f"OK {len(feature_set.features)} features compile on Spark against the raw contract ({raw.path})"
        )
    return problems


def load_features(module: str, root: Path) -> FeatureSet:
    """The module's `FEATURE_SET`: imported from the repository, or loaded from `root/features/`.
    A module that does not import is one line (its exception); `-v` logs the traceback."""
    try:
        if root.resolve() == REPO_ROOT:
            return load_feature_set(module)
        return _feature_set_from_file(root / "features" / f"{module.removeprefix('features.')}.py")
    except ModuleNotFoundError as exc:
        if exc.name is None or module.startswith(exc.name):
            raise BadInput(f"features module {module} does not exist: {exc}") from None
        failure: Exception = exc
    except Exception as exc:  # whatever the module's own code raised while it was imported
        failure = exc
    log.info("features module %s does not load", module, exc_info=failure)
    message = " ".join(str(failure).split())
    raise BadInput(f"features module {module} does not load: {type(failure).__name__}: {message}")


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


def column_problems(
    suites: dict[str, Suite], pipeline: PipelineSettings, feature_set: FeatureSet | None
) -> list[str]:
    """Each loaded suite's columns against what its stage writes (the features suite only when
    the feature set loaded); one line per problem."""
    key = pipeline.dataset.entity_key
    found = Findings()
    declared = {stage: found.load(partial(declared_columns, suite)) for stage, suite in suites.items()}
    if declared.get("raw") is not None and key not in (declared["raw"] or ()):
        found.problems.append(
            f"{suites['raw'].path}: the raw contract does not declare the entity key {key!r}"
        )
    if declared.get("features") is not None and feature_set is not None:
        wanted = {key, *feature_set.names}
        found.load(lambda: _same(suites["features"], declared["features"] or set(), wanted, "key + features"))
    if declared.get("scores") is not None:
        wanted = set(scores_columns(key, pipeline.model.task, list(pipeline.model.classes)))
        what = f"a {pipeline.model.task} model's scores"
        found.load(lambda: _same(suites["scores"], declared["scores"] or set(), wanted, what))
    if not found.problems and len(suites) == len(STAGES):
        found.load(lambda: _check_key_types(suites, key))
    return found.problems


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
