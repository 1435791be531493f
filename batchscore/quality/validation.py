"""Validation gates: a data contract, then Great Expectations 1.x suites from `expectations/`.

A suite file is GX 1.x suite JSON (`{"name", "meta", "expectations": [{"type", "kwargs",
"severity"?}]}`) whose `meta.schema` declares the dataset's contract: every column's name
and Arrow type, in order. A gate first compares the partition's schema with the contract
(missing, extra, renamed, retyped columns; NaN in float columns) and only then runs the
suite's statistics. Expectations with `"severity": "warning"` are reported but do not fail
the gate. GX silently drops expectations it does not recognise, so loading builds each one
on its own and names the ones GX refused. Every run writes `result.json` and a
self-contained `report.html` (inline CSS, no scripts, no external assets: it renders offline).
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchscore.errors import PermanentFailure
from batchscore.storage.lake import write_bytes_atomic

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from great_expectations.core import ExpectationSuite
    from pyspark.sql import DataFrame as SparkFrame

log = logging.getLogger(__name__)

MAX_EXAMPLES = 5
RESULT_FORMAT = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": MAX_EXAMPLES,
    "return_unexpected_index_query": False,
}
FLOAT_TYPES = frozenset({"halffloat", "float", "double"})


class SuiteError(PermanentFailure, ValueError):
    """A suite file is unreadable, declares no contract, or holds expectations GX refused."""


@dataclass(frozen=True)
class Suite:
    """A reviewed suite file: the declared contract and the GX suite, every expectation recognised."""

    path: Path
    schema: dict[str, str]
    gx: ExpectationSuite

    @property
    def expectations(self) -> list[Any]:
        return list(self.gx.expectations)


@dataclass(frozen=True)
class FailedExpectation:
    type: str
    column: str | None
    kwargs: dict[str, Any]
    unexpected_count: int | None
    unexpected_percent: float | None
    examples: list[Any]
    severity: str
    observed: Any = None

    def describe(self) -> str:
        where = f" on {self.column}" if self.column else ""
        counts = ""
        if self.unexpected_count is not None:
            counts = f": {self.unexpected_count} unexpected ({self.unexpected_percent or 0:.4g}%)"
        elif self.observed is not None:
            counts = f": observed {_short(self.observed)}"
        examples = f", e.g. {_short(self.examples)}" if self.examples else ""
        return f"{self.type}{where}{counts}{examples}"


@dataclass(frozen=True)
class ValidationOutcome:
    pipeline: str
    dataset: str
    stage: str
    partition: str
    success: bool
    evaluated: int
    passed: int
    failed: list[FailedExpectation] = field(default_factory=list)
    contract: list[str] = field(default_factory=list)
    suite: str = ""
    engine: str = "pandas"
    rows: int = 0
    json_path: str = ""
    html_path: str = ""
    seconds: float = 0.0
    workers: int = 0
    """Processes that ran the suite (0 when the contract failed first)."""

    def summary(self) -> str:
        """One readable message: what was checked, what failed, where the report is."""
        status = "passed" if self.success else "FAILED"
        where = (
            f"validation {status}: pipeline {self.pipeline}, dataset {self.dataset} ({self.stage}), "
            f"partition {self.partition}"
        )
        if self.contract:
            lines = [f"{where}: the partition breaks the contract declared in {self.suite}"]
            lines += [f"  - {problem}" for problem in self.contract]
        else:
            lines = [f"{where}: {self.passed}/{self.evaluated} expectations met on {self.rows} rows"]
            lines += [f"  - [{f.severity}] {f.describe()}" for f in self.failed]
        lines.append(f"  report: {self.html_path}")
        return "\n".join(lines)


class ValidationFailed(PermanentFailure, RuntimeError):
    """A gate failed: the message names the dataset, the partition and each failed check."""

    def __init__(self, outcome: ValidationOutcome):
        super().__init__(outcome.summary())
        self.result = outcome


def load_suite(path: str | Path) -> Suite:
    """The suite in `path`; fails naming every expectation GX did not recognise or that is unsafe."""
    import great_expectations as gx

    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise SuiteError(f"expectation suite {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise SuiteError(f"expectation suite {path} is not valid JSON: {exc}") from None
    schema = (raw.get("meta") or {}).get("schema")
    if not isinstance(schema, dict) or not schema or not all(isinstance(v, str) for v in schema.values()):
        raise SuiteError(
            f"expectation suite {path} declares no contract: meta.schema must map each column to its "
            'Arrow type, e.g. {"customer_id": "int64", "score": "double"}'
        )
    declared = raw.get("expectations") or []
    if not declared:
        raise SuiteError(f"expectation suite {path} declares no expectations")
    problems = [p for i, entry in enumerate(declared) for p in _entry_problems(i, entry, schema)]
    if problems:
        recognised = len(declared) - sum(1 for p in problems if p.startswith("not recognised"))
        raise SuiteError(
            f"expectation suite {path}: GX recognised {recognised} of {len(declared)} expectations; "
            + "; ".join(problems)
        )
    suite = _quietly(lambda: gx.ExpectationSuite(name=raw.get("name") or path.stem, expectations=declared))
    if len(suite.expectations) != len(declared):  # a second guard in case GX drops one in bulk only
        raise SuiteError(
            f"expectation suite {path}: GX recognised {len(suite.expectations)} of {len(declared)} expectations"
        )
    return Suite(path=path, schema=dict(schema), gx=suite)


def _entry_problems(index: int, entry: Any, schema: dict[str, str]) -> list[str]:
    """Why one declared expectation is unusable: unknown to GX, bad arguments, or unsafe."""
    import great_expectations as gx

    if not isinstance(entry, dict) or "type" not in entry:
        return [f"not recognised: expectation #{index + 1} has no 'type'"]
    name = entry["type"]
    try:
        built = _quietly(lambda: gx.ExpectationSuite(name="probe", expectations=[entry]).expectations)
    except Exception as exc:  # GX raises for bad arguments (pydantic), drops unknown types
        return [f"not recognised: {name!r} (#{index + 1}): {_first_line(exc)}"]
    if not built:
        return [f"not recognised: {name!r} (#{index + 1}): {_rejection(entry)}"]
    kwargs = entry.get("kwargs") or {}
    column = kwargs.get("column")
    if column is not None and column not in schema:
        return [f"{name} (#{index + 1}) checks column {column!r}, which the contract does not declare"]
    if (
        name.endswith("_to_be_between")
        and column is not None
        and schema[column] in FLOAT_TYPES
        and (kwargs.get("min_value") is None or kwargs.get("max_value") is None)
    ):
        return [
            f"{name} on {column} (#{index + 1}) needs both min_value and max_value: "
            "an open range lets ±inf through"
        ]
    return []


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:199] + "…"


def _rejection(entry: dict[str, Any]) -> str:
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    try:
        config = ExpectationConfiguration(**entry)
        ExpectationSuite(name="probe")._build_expectation(config)
    except Exception as exc:
        return str(exc).split(":")[-1].strip()
    return "unknown reason"


def _quietly(build: Callable[[], Any]) -> Any:
    """Run a GX call with its logger muted (it logs a traceback for each dropped expectation)."""
    logger = logging.getLogger("great_expectations")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        return build()
    finally:
        logger.setLevel(level)


def arrow_type_name(data_type: pa.DataType) -> str:
    """The contract's spelling of an Arrow type (large and small strings are the same thing)."""
    name = str(data_type)
    return {"large_string": "string", "large_utf8": "string", "utf8": "string", "large_binary": "binary"}.get(
        name, name
    )


def contract_violations(declared: dict[str, str], schema: pa.Schema) -> list[str]:
    """A readable diff of `schema` against the declared contract: renamed, missing, extra, retyped."""
    found = {f.name: arrow_type_name(f.type) for f in schema}
    missing = [c for c in declared if c not in found]
    extra = [c for c in found if c not in declared]
    problems = []
    for column in list(missing):
        kind = declared[column]
        same_type_missing = [c for c in missing if declared[c] == kind]
        same_type_extra = [c for c in extra if found[c] == kind]
        if len(same_type_missing) == 1 and len(same_type_extra) == 1:
            new = same_type_extra[0]
            problems.append(
                f"renamed? column {column} ({kind}) is missing and {new} ({kind}) is not declared: "
                f"was {column} renamed to {new}?"
            )
            missing.remove(column)
            extra.remove(new)
    problems += [f"missing column {c} ({declared[c]})" for c in missing]
    problems += [f"extra column {c} ({found[c]}) is not declared" for c in extra]
    problems += [
        f"retyped column {c}: declared {declared[c]}, found {found[c]}"
        for c in declared
        if c in found and found[c] != declared[c]
    ]
    return problems


def nan_violations(nan_counts: dict[str, int]) -> list[str]:
    """NaN is not a value: missing values are spelled null, which the suite's tolerances govern."""
    return [
        f"NaN in float column {column}: {count} row(s); write null for a missing value"
        for column, count in nan_counts.items()
        if count
    ]


def arrow_nan_counts(table: pa.Table) -> dict[str, int]:
    import pyarrow.compute as pc
    import pyarrow.types as pat

    return {
        f.name: int(pc.sum(pc.is_nan(table[f.name])).as_py() or 0)
        for f in table.schema
        if pat.is_floating(f.type)
    }


def pandas_frame(table: pa.Table) -> pd.DataFrame:
    """The table as GX's pandas engine validates it fastest: numbers widened to 64 bits, strings
    as categoricals.

    GX's pandas range and set checks are vectorised for int64/float64 only; narrower types fall
    back to slow paths. Set and null checks on a categorical compare its few categories instead
    of every Python string. Neither changes a value.
    """
    import pyarrow as pa
    import pyarrow.types as pat

    columns = []
    for f in table.schema:
        column = table[f.name]
        if pat.is_integer(f.type) and f.type != pa.int64():
            column = column.cast(pa.int64())
        elif pat.is_floating(f.type) and f.type != pa.float64():
            column = column.cast(pa.float64())
        columns.append(column)
    # split_blocks: each column keeps its own array (numbers zero-copy) instead of being
    # copied into one 2-D block per type
    return pa.table(columns, names=table.column_names).to_pandas(
        strings_to_categorical=True, split_blocks=True
    )


def validate_table(
    table: pa.Table,
    suite: Suite,
    *,
    pipeline: str,
    dataset: str,
    stage: str,
    partition: str,
    report_dir: str | Path,
    raise_on_failure: bool = True,
    workers: int | None = None,
) -> ValidationOutcome:
    """Gate an in-memory partition: contract first, then the suite on GX's pandas engine.

    Partitions of `PARALLEL_MIN_ROWS` or more are validated by `workers` forked processes
    (default: the CPUs this process may use).
    """
    started = time.perf_counter()
    contract = contract_violations(suite.schema, table.schema)
    if not contract:
        contract = nan_violations(arrow_nan_counts(table))
    return _gate(
        suite,
        contract,
        lambda: _gx_results(
            suite,
            "pandas",
            column_batches(suite, table),
            workers=(workers or usable_cpus()) if table.num_rows >= PARALLEL_MIN_ROWS else 1,
        ),
        engine="pandas",
        rows=table.num_rows,
        started=started,
        identity=(pipeline, dataset, stage, partition),
        report_dir=Path(report_dir),
        raise_on_failure=raise_on_failure,
    )


def validate_spark(
    frame: SparkFrame,
    schema: pa.Schema,
    rows: int,
    suite: Suite,
    *,
    pipeline: str,
    dataset: str,
    stage: str,
    partition: str,
    report_dir: str | Path,
    raise_on_failure: bool = True,
) -> ValidationOutcome:
    """Gate a partition too large for memory: the same contract and suite on GX's Spark engine.

    `schema` is the partition's Arrow schema (from the Parquet footers), so both engines check
    the contract on the same types.
    """
    from pyspark.sql import functions as F

    started = time.perf_counter()
    contract = contract_violations(suite.schema, schema)
    if not contract:
        floats = [f.name for f in schema if arrow_type_name(f.type) in FLOAT_TYPES]
        counts = (
            frame.agg(*[F.sum(F.isnan(F.col(c)).cast("long")).alias(c) for c in floats]).first()
            if floats
            else None
        )
        contract = nan_violations({c: int(counts[c] or 0) for c in floats} if counts else {})

    def run_suite() -> tuple[list[Any], int]:
        # Our own cache, dropped afterwards: Spark matches cached data by plan, so a persisted
        # read of this path would answer the next read of it (a rerun after a fix) with old rows.
        frame.persist()
        try:
            return _gx_results(suite, "spark", [(frame, list(range(len(suite.expectations))))])
        finally:
            frame.unpersist()

    return _gate(
        suite,
        contract,
        run_suite,
        engine="spark",
        rows=rows,
        started=started,
        identity=(pipeline, dataset, stage, partition),
        report_dir=Path(report_dir),
        raise_on_failure=raise_on_failure,
    )


COLUMNS_PER_BATCH = 3
"""Columns in each pandas batch: GX's pandas engine copies the whole batch to drop a column's
nulls before every column check, so narrow batches copy little; each batch costs ~20 ms of
fixed overhead, so not one per column. Measured on the churn suites (1M rows x 26 columns):
one batch 1.05 s, 3 columns per batch 0.45-0.6 s, 1 column per batch 0.7 s."""


def column_batches(suite: Suite, table: pa.Table) -> list[tuple[Any, list[int]]]:
    """The partition as pandas batches, each with the indices of the suite's expectations it answers.

    Each single-column expectation goes to the batch holding its column; the others (table
    level, several columns) see every column.
    """
    import pandas as pd

    names = table.column_names
    groups = [names[i : i + COLUMNS_PER_BATCH] for i in range(0, len(names), COLUMNS_PER_BATCH)]
    whole_frame = pandas_frame(table)
    # the batches share the whole frame's arrays (copy=False: no consolidation into 2-D blocks)
    frames = [pd.DataFrame({name: whole_frame[name] for name in group}, copy=False) for group in groups]
    group_of = {name: number for number, group in enumerate(groups) for name in group}
    members: list[list[int]] = [[] for _ in groups]
    whole: list[int] = []
    for index, expectation in enumerate(suite.expectations):
        column = expectation.configuration.kwargs.get("column")
        (members[group_of[column]] if column in group_of else whole).append(index)
    batches: list[tuple[Any, list[int]]] = [(f, m) for f, m in zip(frames, members, strict=True) if m]
    if whole:
        batches.append((whole_frame, whole))
    return batches


def _tune_gx_pandas() -> None:
    """Two costs GX's pandas engine pays for nothing here, and one thread, removed once per process.

    - Each batch under 1 GB is fingerprinted (MD5 over a hash of every value, ~0.35 s per 1M x
      26 frame) for batch metadata batchscore never reads.
    - `expect_column_mean_to_be_between` first scans the column in a Python loop for
      `decimal.Decimal` objects (~0.25 s per 1M rows); only an object array can hold them, so
      numeric arrays skip the scan. The mean itself is still GX's.
    """
    import great_expectations.execution_engine.pandas_execution_engine as engine
    import great_expectations.util as gx_util
    from tqdm import tqdm

    engine.HASH_THRESHOLD = 0
    # GX creates (disabled) tqdm bars, and the first one starts tqdm's monitor thread, which
    # only tunes refresh rates of live bars; without it the gate's process stays single-threaded
    # and may fork workers (see _gx_results).
    tqdm.monitor_interval = 0
    if tqdm.monitor is not None:
        tqdm.monitor.exit()
        tqdm.monitor = None
    scan = gx_util.does_ndarray_contain_decimal_dtype
    if not getattr(scan, "batchscore_tuned", False):

        def numeric_arrays_hold_no_decimals(data: Any) -> bool:
            kind = getattr(getattr(data, "dtype", None), "kind", "O")
            return kind == "O" and bool(scan(data))

        numeric_arrays_hold_no_decimals.batchscore_tuned = True  # type: ignore[attr-defined]
        gx_util.does_ndarray_contain_decimal_dtype = numeric_arrays_hold_no_decimals  # type: ignore[assignment]


PARALLEL_MIN_ROWS = 200_000
"""Below this many rows a gate validates in-process: forking workers costs more than it saves."""

_FORKED: tuple[Suite, list[tuple[Any, list[int]]]] | None = None
"""The suite and batches a forked worker validates from (inherited at fork, never pickled)."""


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _gx_results(
    suite: Suite, engine: str, batches: list[tuple[Any, list[int]]], workers: int = 1
) -> tuple[list[Any], int]:
    """Run the GX suite over dataframe batches; one result per expectation, in the suite's order.

    With `workers` > 1 (pandas only) the batches are shared out to that many forked processes,
    each validating its share with its own GX context on the frames it inherited; results come
    back pickled. A worker that fails fails the gate. Returns the results and the processes used.

    Workers are forked only from a process with no other Python thread: a thread holding a
    lock at the fork (tqdm's monitor, a log handler, a client pool) leaves that lock held
    forever in the child, which then hangs on it. Other processes validate in-process.
    """
    import multiprocessing

    if engine == "pandas":
        _tune_gx_pandas()  # before counting threads: it stops tqdm's monitor thread
    results: list[Any] = [None] * len(suite.expectations)
    workers = min(workers, len(batches)) if engine == "pandas" else 1
    if workers > 1:
        others = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
        if others or multiprocessing.current_process().daemon:
            log.info("validating in-process, not forking: daemonic process or other threads %s", others)
            workers = 1
        elif "fork" not in multiprocessing.get_all_start_methods():
            workers = 1
    if workers <= 1:
        for index, result in _validate_batches(suite, engine, batches, range(len(batches))):
            results[index] = result
        return results, 1
    # share out by expectation count, largest batch first, to the least loaded worker
    shares: list[list[int]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for number in sorted(range(len(batches)), key=lambda n: -len(batches[n][1])):
        least = loads.index(min(loads))
        shares[least].append(number)
        loads[least] += len(batches[number][1])
    global _FORKED
    _FORKED = (suite, batches)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for part in pool.map(_validate_share, shares):
                for index, result in part:
                    results[index] = result
    finally:
        _FORKED = None
    return results, workers


def _validate_share(share: list[int]) -> list[tuple[int, Any]]:
    assert _FORKED is not None, "a validation worker must be forked from the gate's process"
    suite, batches = _FORKED
    return list(_validate_batches(suite, "pandas", batches, share))


def _validate_batches(
    suite: Suite, engine: str, batches: list[tuple[Any, list[int]]], numbers: Iterable[int]
) -> Iterator[tuple[int, Any]]:
    """(suite index, result) for every expectation of the numbered batches.

    A fresh ephemeral context per call, one asset per batch: GX caches metrics by batch id, and
    a whole-dataframe batch keeps the same id across dataframes, so a reused context could
    answer from the previous partition's metrics.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    if engine == "pandas":
        _tune_gx_pandas()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    sources = context.data_sources
    source = (
        sources.add_spark("batchscore", persist=False)
        if engine == "spark"
        else sources.add_pandas("batchscore")
    )
    configs = [e.configuration for e in suite.expectations]
    for number in numbers:
        dataframe, indices = batches[number]
        batch = (
            source.add_dataframe_asset(name=f"batch {number}")
            .add_batch_definition_whole_dataframe("whole batch")
            .get_batch(batch_parameters={"dataframe": dataframe})
        )
        # Pass 1 decides every expectation with GX's cheapest result format; pass 2 re-runs only
        # the failed ones for their unexpected counts and examples. About twice as fast on a
        # clean partition, the usual night; GX decides success either way.
        part = gx.ExpectationSuite(
            name=f"{suite.gx.name} ({number})", expectations=[_entry(configs[i]) for i in indices]
        )
        verdicts = _in_order(
            indices, configs, batch.validate(part, result_format={"result_format": "BOOLEAN_ONLY"})
        )
        failed = [i for i in indices if not verdicts[i].success]
        if failed:
            details = gx.ExpectationSuite(
                name=f"{suite.gx.name} ({number}, failed)", expectations=[_entry(configs[i]) for i in failed]
            )
            verdicts |= _in_order(failed, configs, batch.validate(details, result_format=RESULT_FORMAT))
        yield from verdicts.items()


def _in_order(indices: list[int], configs: list[Any], run: Any) -> dict[int, Any]:
    """Map a validation run's results back to suite indices by what each expectation checks."""
    by_key: dict[str, list[Any]] = {}
    for result in run.results:
        by_key.setdefault(_key(result.expectation_config), []).append(result)
    return {i: by_key[_key(configs[i])].pop(0) for i in indices}


def _entry(config: Any) -> dict[str, Any]:
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    entry: dict[str, Any] = {"type": config.type, "kwargs": kwargs}
    if config.severity is not None:
        entry["severity"] = getattr(config.severity, "value", config.severity)
    return entry


def _key(config: Any) -> str:
    """Identifies one expectation of a suite by what it checks."""
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    return json.dumps([config.type, _jsonable(kwargs)], sort_keys=True)


def _gate(
    suite: Suite,
    contract: list[str],
    run_suite: Callable[[], tuple[list[Any], int]],
    *,
    engine: str,
    rows: int,
    started: float,
    identity: tuple[str, str, str, str],
    report_dir: Path,
    raise_on_failure: bool,
) -> ValidationOutcome:
    """Run the suite unless the contract already failed, write both reports, raise on failure."""
    results, workers = ([], 0) if contract else run_suite()
    failed = [_failure(r) for r in results if not r.success]
    blocking = bool(contract) or any(f.severity != "warning" for f in failed)
    pipeline, dataset, stage, partition = identity
    outcome = ValidationOutcome(
        pipeline=pipeline,
        dataset=dataset,
        stage=stage,
        partition=partition,
        success=not blocking,
        evaluated=len(results),
        passed=sum(1 for r in results if r.success),
        failed=failed,
        contract=contract,
        suite=str(suite.path),
        engine=engine,
        rows=rows,
        json_path=str(report_dir / "result.json"),
        html_path=str(report_dir / "report.html"),
        seconds=time.perf_counter() - started,
        workers=workers,
    )
    document = {
        "outcome": asdict(outcome),
        "contract": {"declared": suite.schema, "violations": contract},
        "expectations": [_result_row(r) for r in results],
    }
    document = _jsonable(document)
    write_bytes_atomic(Path(outcome.json_path), json.dumps(document, indent=2).encode())
    write_bytes_atomic(Path(outcome.html_path), render_html(document).encode())
    if blocking and raise_on_failure:
        raise ValidationFailed(outcome)
    return outcome


def _severity(config: Any) -> str:
    value = getattr(config, "severity", None)
    value = getattr(value, "value", value) or "critical"
    return "warning" if str(value).lower() in ("warning", "info") else "error"


def _failure(r: Any) -> FailedExpectation:
    config = r.expectation_config
    res = r.result or {}
    exception = (
        (r.exception_info or {}).get("exception_message") if isinstance(r.exception_info, dict) else None
    )
    return FailedExpectation(
        type=config.type,
        column=config.kwargs.get("column"),
        kwargs=_jsonable({k: v for k, v in config.kwargs.items() if k != "batch_id"}),
        unexpected_count=res.get("unexpected_count"),
        unexpected_percent=res.get("unexpected_percent"),
        examples=_examples(config.type, res),
        severity=_severity(config),
        observed=_jsonable(res.get("observed_value", exception)),
    )


def _examples(expectation_type: str, result: dict[str, Any]) -> list[Any]:
    """A few unexpected values; none for null checks, where every example would be null."""
    if expectation_type == "expect_column_values_to_not_be_null":
        return []
    return list(_jsonable(list(result.get("partial_unexpected_list") or [])[:MAX_EXAMPLES]))


def _result_row(r: Any) -> dict[str, Any]:
    config = r.expectation_config
    res = r.result or {}
    return _jsonable(
        {
            "type": config.type,
            "column": config.kwargs.get("column"),
            "kwargs": {k: v for k, v in config.kwargs.items() if k not in ("batch_id", "column")},
            "severity": _severity(config),
            "success": bool(r.success),
            "unexpected_count": res.get("unexpected_count"),
            "unexpected_percent": res.get("unexpected_percent"),
            "examples": _examples(config.type, res),
            "observed": res.get("observed_value"),
        }
    )


def _jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars unwrapped, NaN/inf spelled as strings, dates as ISO."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(_jsonable(value), default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


OFFLINE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
"""The report's Content-Security-Policy: the browser itself refuses any fetch the page might make."""

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2430}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:20px 0 8px} .meta{color:#566070;margin-bottom:16px}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;font-weight:600;color:#fff}
.ok{background:#1f8a4c} .bad{background:#c62828} .warn{background:#b26a00}
table{border-collapse:collapse;width:100%} th,td{border-bottom:1px solid #e3e6ea;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f5f7f9;font-weight:600} tr.fail td{background:#fdecec} tr.warning td{background:#fff6e5}
ul.contract li{background:#fdecec;padding:4px 8px;margin:2px 0;list-style:none}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;white-space:pre-wrap;word-break:break-word}
td.name code{white-space:nowrap}
"""


def render_html(document: dict[str, Any]) -> str:
    """batchscore's own report from the result JSON: inline CSS, no scripts, no external assets."""
    e = html.escape
    outcome = document["outcome"]
    status = "PASSED" if outcome["success"] else "FAILED"
    badge = "ok" if outcome["success"] else "bad"
    contract = document["contract"]["violations"]
    sections = []
    if contract:
        items = "".join(f"<li>{e(problem)}</li>" for problem in contract)
        sections.append(
            f"<h2 id='contract'>Contract broken: the suite was not run</h2><ul class='contract'>{items}</ul>"
        )
    rows = []
    order = {"fail": 0, "warning": 1, "pass": 2}
    states = [
        ("pass" if row["success"] else ("warning" if row["severity"] == "warning" else "fail"), row)
        for row in document["expectations"]
    ]
    for state, row in sorted(states, key=lambda pair: order[pair[0]]):  # failures first
        count = (
            ""
            if row["unexpected_count"] is None
            else f"{row['unexpected_count']} ({row['unexpected_percent'] or 0:.4g}%)"
        )
        rows.append(
            f"<tr class='{state}'><td>{e(state)}</td><td class='name'><code>{e(row['type'])}</code></td>"
            f"<td>{e(str(row['column'] or ''))}</td><td><code>{e(_short(row['kwargs'], 400))}</code></td>"
            f"<td>{e(row['severity'])}</td><td>{e(count)}</td>"
            f"<td><code>{e(_short(row['examples'], 300)) if row['examples'] else ''}</code></td>"
            f"<td><code>{e(_short(row['observed'], 300)) if row['observed'] is not None else ''}</code></td></tr>"
        )
    if rows:
        sections.append(
            "<h2>Expectations</h2><table id='expectations'><thead><tr><th>status</th><th>expectation</th>"
            "<th>column</th><th>arguments</th><th>severity</th><th>unexpected</th><th>examples</th>"
            f"<th>observed</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
    declared = "".join(
        f"<tr><td>{e(name)}</td><td><code>{e(kind)}</code></td></tr>"
        for name, kind in document["contract"]["declared"].items()
    )
    sections.append(
        "<h2>Declared contract</h2><table id='schema'><thead><tr><th>column</th><th>Arrow type</th></tr>"
        f"</thead><tbody>{declared}</tbody></table>"
    )
    title = f"{outcome['pipeline']} · {outcome['dataset']} · {outcome['stage']}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{OFFLINE_POLICY}"><title>{e(title)} validation</title>
<style>{STYLE}</style></head><body>
<h1>{e(title)} <span class="badge {badge}" id="status">{status}</span></h1>
<div class="meta">partition <code>{e(outcome["partition"])}</code><br>suite <code>{e(outcome["suite"])}</code><br>
{outcome["passed"]}/{outcome["evaluated"]} expectations met on {outcome["rows"]} rows in {outcome["seconds"]:.2f}s
({e(outcome["engine"])} engine)</div>
{"".join(sections)}
</body></html>
"""
