"""What `batchscore run` and `backfill` check before they start Airflow: the days are not after
today (in the pipeline's time zone) and their raw partitions have landed, or are waited for
(`--wait`) with a line of progress at least every minute. Each refusal is one line naming the
dataset, the days and the path looked for; nothing has run when it is raised."""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from batchscore.errors import BadInput
from batchscore.settings import Settings
from batchscore.storage.lake import SUCCESS_MARKER, Lake

DEFAULT_WAIT = timedelta(hours=6)
POLL_S = 15.0
PROGRESS_S = 60.0
_DURATION = re.compile(r"(\d+)([dhms])")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """`2h`, `90m`, `45s`, `1d`, `1h30m` as a timedelta (argparse's `type` for `--wait`)."""
    parts = _DURATION.findall(text.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != text.strip().lower():
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: use e.g. 2h, 90m, 45s or 1h30m")
    return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))


def add_options(parser: argparse.ArgumentParser) -> None:
    """`--wait [DURATION]` and `--allow-future`, the same on `run` and `backfill`."""
    parser.add_argument(
        "--wait",
        nargs="?",
        const=DEFAULT_WAIT,
        type=parse_duration,
        metavar="DURATION",
        help="wait for unlanded raw partitions, up to DURATION (e.g. 2h; 6h when given alone), then run",
    )
    parser.add_argument(
        "--allow-future",
        action="store_true",
        help="run a day after today (in the pipeline's schedule.timezone); refused otherwise",
    )


def duration_text(span: timedelta | float) -> str:
    """`2h`, `5m30s`, `45s`: short enough for a progress line."""
    seconds = int(span.total_seconds() if isinstance(span, timedelta) else span)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{seconds}s" if seconds or not text else "")


def today_in(timezone: str) -> date:
    return datetime.now(ZoneInfo(timezone)).date()


def refuse_future(days: Sequence[date], timezone: str, allow_future: bool) -> None:
    """A day after today would be scored and become the day readers see as the latest."""
    today = today_in(timezone)
    future = [d for d in days if d > today]
    if future and not allow_future:
        raise BadInput(
            f"{future[0]} is after today ({today} in {timezone}, the pipeline's schedule.timezone): "
            "its scores would become the latest day served; pass --allow-future to run it anyway "
            "(nothing was run)"
        )


def marker_url(lake: Lake, dataset: str, day: date) -> str:
    return lake.remote_url(lake.raw_partition(dataset, day) / SUCCESS_MARKER)


def unlanded(lake: Lake, dataset: str, days: Sequence[date]) -> list[date]:
    return [d for d in days if not lake.landed(lake.raw_partition(dataset, d))]


def _what(lake: Lake, dataset: str, missing: Sequence[date]) -> str:
    """The raw partitions still missing, with the marker looked for."""
    if len(missing) == 1:
        return f"the raw partition of {dataset} for {missing[0]} ({marker_url(lake, dataset, missing[0])})"
    shown = ", ".join(str(d) for d in missing[:10]) + (" ..." if len(missing) > 10 else "")
    where = lake.remote_url(lake.raw_partition(dataset, missing[0]).parent)
    return f"{len(missing)} raw partitions of {dataset} ({shown}; {where}/dt=<day>/{SUCCESS_MARKER})"


def missing_message(lake: Lake, dataset: str, days: Sequence[date], missing: Sequence[date]) -> str:
    if len(days) == 1:
        head = f"the raw partition of {dataset} for {days[0]} has not landed: no {marker_url(lake, dataset, days[0])}"
        fix = "land it"
    else:
        shown = ", ".join(str(d) for d in missing[:10]) + (" ..." if len(missing) > 10 else "")
        where = lake.remote_url(lake.raw_partition(dataset, missing[0]).parent)
        head = (
            f"{len(missing)} of {len(days)} days have no complete raw/{dataset} partition ({shown}; "
            f"looked for {where}/dt=<day>/{SUCCESS_MARKER})"
        )
        fix = "land them, narrow --start/--end"
    return (
        f"{head}; nothing was run: {fix} or wait with --wait (up to {duration_text(DEFAULT_WAIT)}) "
        "or --wait DURATION (e.g. --wait 2h)"
    )


def await_partitions(
    lake: Lake,
    dataset: str,
    days: Sequence[date],
    wait: timedelta | None,
    poll_s: float = POLL_S,
    progress_s: float = PROGRESS_S,
) -> None:
    """Return once every day's raw partition has landed; raise `BadInput` at once without
    `wait`, or when `wait` runs out. While waiting, print a line at least every `progress_s`."""
    missing = unlanded(lake, dataset, days)
    if not missing:
        return
    if wait is None:
        raise BadInput(missing_message(lake, dataset, days, missing))
    limit = wait.total_seconds()
    print(
        f"waiting up to {duration_text(wait)} for {_what(lake, dataset, missing)}, "
        f"checking every {duration_text(poll_s)}",
        flush=True,
    )
    started = last = time.monotonic()
    while True:
        now = time.monotonic()
        time.sleep(max(0.0, min(poll_s, last + progress_s - now, started + limit - now)))
        missing = unlanded(lake, dataset, missing)
        now = time.monotonic()
        if not missing:
            print(f"landed after {duration_text(now - started)} of waiting; running", flush=True)
            return
        if now - started >= limit:
            raise BadInput(
                f"gave up after waiting {duration_text(wait)}: {_what(lake, dataset, missing)} "
                "has not landed; nothing was run"
            )
        if now - last >= progress_s:
            print(
                f"  still waiting for {_what(lake, dataset, missing)}: {duration_text(now - started)} "
                f"so far, up to {duration_text(wait)}",
                flush=True,
            )
            last = now


def check_days(settings: Settings, days: Sequence[date], args: argparse.Namespace) -> None:
    """The days are not in the future and their raw partitions have landed (or, with `--wait`,
    do land in time). Runs before Airflow starts."""
    refuse_future(days, settings.pipeline.schedule.timezone, args.allow_future)
    lake = Lake(settings.platform.lake_url, settings.platform)
    dataset = settings.pipeline.dataset.name
    await_partitions(lake, dataset, days, args.wait, poll_s=POLL_S, progress_s=PROGRESS_S)
