"""Great Expectations as batchscore runs it: a suite over narrow pandas batches (forked
workers for large partitions) or one Spark frame, with GX's needless per-batch costs removed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from batchscore.quality.outcome import MAX_EXAMPLES, jsonable
from batchscore.quality.suites import Suite

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)

RESULT_FORMAT = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": MAX_EXAMPLES,
    "return_unexpected_index_query": False,
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


def tune_gx_pandas() -> None:
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
    # and may fork workers (see gx_results).
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


_FORKED: tuple[Suite, list[tuple[Any, list[int]]]] | None = None
"""The suite and batches a forked worker validates from (inherited at fork, never pickled)."""


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def gx_results(
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
        tune_gx_pandas()  # before counting threads: it stops tqdm's monitor thread
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
        tune_gx_pandas()
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
    return json.dumps([config.type, jsonable(kwargs)], sort_keys=True)
