"""Context columns beside the scores, under a versioned output contract, on both warehouses."""

from __future__ import annotations

import json
import struct
from datetime import date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from batchscore.storage.warehouse import AuditFailed, open_warehouse
from batchscore.storage.warehouse.output_contract import ContractChange
from batchscore.storage.warehouse.postgres.binary import (
    _scattered_stream,
    _utf8,
    context_field,
    record_stream,
)
from tests.warehouse.slices import DAY, scores_file, target
from tests.warehouse.test_multiclass_publish import CLASSES, INT_KEYS, PROBS, STRING_KEYS, mc_file, mc_target

DAY2, DAY3 = date(2026, 11, 22), date(2026, 11, 23)


def raw_context(keys, **columns) -> pa.Table:  # type: ignore[no-untyped-def]
    """Key and context columns as the publish job reads them from the raw partition."""
    return pa.table({"customer_id": pa.array(keys, pa.int64()), **columns})


def columns_of(warehouse, name: str) -> list[str]:  # type: ignore[no-untyped-def]
    rows = warehouse.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = ? ORDER BY ordinal_position",
        [name],
    )
    return [row[0] for row in rows]


BASE = ["customer_id", "run_date", "pipeline", "model_name", "model_version", "score", "run_id"]


def test_context_columns_are_published_with_the_raw_values_and_nulls(warehouse, tmp_path):
    scores = scores_file(tmp_path / "s", [1, 2, 3], [0.1, 0.5, 0.9])
    context = raw_context(
        [3, 4, 1, 2],  # the raw partition may hold entities the features left out
        region=pa.array(["east", "west", None, "north"]),
        tenure=pa.array([12, 1, None, 40], pa.int32()),
        charges=pa.array([70.5, 1.0, 20.25, None]),
        is_business=pa.array([True, False, None, False]),
        signup=pa.array([date(2020, 1, 31), date(1999, 12, 31), date(2000, 1, 1), None], pa.date32()),
    )
    result = warehouse.publish_scores(target(), scores, 3, context=context)
    assert result.rows == 3
    assert warehouse.query(
        "SELECT customer_id, score, region, tenure, charges, is_business, signup FROM scores_churn ORDER BY 1"
    ) == [
        (1, 0.1, None, None, 20.25, None, date(2000, 1, 1)),
        (2, 0.5, "north", 40, None, False, None),
        (3, 0.9, "east", 12, 70.5, True, date(2020, 1, 31)),
    ]
    context_names = ["region", "tenure", "charges", "is_business", "signup"]
    assert columns_of(warehouse, "scores_churn_v1") == [*BASE, *context_names]
    assert columns_of(warehouse, "latest_scores_churn") == [*BASE, *context_names, "as_of", "is_stale"]
    assert warehouse.query("SELECT customer_id, region FROM latest_scores_churn ORDER BY 1") == [
        (1, None),
        (2, "north"),
        (3, "east"),
    ]
    (version, described), *others = warehouse.query(
        "SELECT version, columns FROM output_contracts WHERE scores_table = 'scores_churn'"
    )
    assert not others and version == 1
    assert json.loads(described) == [
        {"name": "region", "kind": "string"},
        {"name": "tenure", "kind": "integer"},
        {"name": "charges", "kind": "floating"},
        {"name": "is_business", "kind": "boolean"},
        {"name": "signup", "kind": "date"},
    ]
    # a republish under the same contract replaces the values, and makes no new version
    again = raw_context(
        [1, 2, 3],
        region=pa.array(["a", "b", "c"]),
        tenure=pa.array([1, 2, 3], pa.int32()),
        charges=pa.array([0.0] * 3),
        is_business=pa.array([True] * 3),
        signup=pa.array([DAY] * 3, pa.date32()),
    )
    warehouse.publish_scores(target("run-2"), scores, 3, context=again)
    assert warehouse.query("SELECT count(*) FROM output_contracts") == [(1,)]
    assert warehouse.query("SELECT customer_id, region, run_id FROM scores_churn ORDER BY 1") == [
        (1, "a", "run-2"),
        (2, "b", "run-2"),
        (3, "c", "run-2"),
    ]


def test_a_change_of_columns_is_the_next_version_and_old_views_keep_answering(warehouse, tmp_path):
    day1 = scores_file(tmp_path / "d1", [1, 2], [0.1, 0.2])
    warehouse.publish_scores(target(), day1, 2)  # a table published before context columns: version 1
    day2 = scores_file(tmp_path / "d2", [1, 2], [0.3, 0.4], run_date=DAY2)
    regions = pa.array(["north", "south"])
    warehouse.publish_scores(
        target(day=DAY2), day2, 2, context=raw_context([1, 2], region=regions, plan=pa.array(["a", None]))
    )
    day3 = scores_file(tmp_path / "d3", [1, 2], [0.5, 0.6], run_date=DAY3)
    tenure = pa.array([5, 6], pa.int64())
    warehouse.publish_scores(
        target(day=DAY3), day3, 2, context=raw_context([2, 1], region=regions, tenure=tenure)
    )

    assert warehouse.query("SELECT version, columns FROM output_contracts ORDER BY 1") == [
        (1, "[]"),
        (2, '[{"name": "region", "kind": "string"}, {"name": "plan", "kind": "string"}]'),
        (3, '[{"name": "region", "kind": "string"}, {"name": "tenure", "kind": "integer"}]'),
    ]
    assert columns_of(warehouse, "scores_churn_v1") == BASE
    assert columns_of(warehouse, "scores_churn_v2") == [*BASE, "region", "plan"]
    assert columns_of(warehouse, "scores_churn_v3") == [*BASE, "region", "tenure"]
    assert columns_of(warehouse, "scores_churn") == [*BASE, "region", "plan", "tenure"]  # only grows
    assert columns_of(warehouse, "latest_scores_churn") == [*BASE, "region", "tenure", "as_of", "is_stale"]
    # the query written against version 2 still answers, over every slice (NULL where not published)
    assert warehouse.query(
        "SELECT run_date, customer_id, score, region, plan FROM scores_churn_v2 ORDER BY 1, 2"
    ) == [
        (DAY, 1, 0.1, None, None),
        (DAY, 2, 0.2, None, None),
        (DAY2, 1, 0.3, "north", "a"),
        (DAY2, 2, 0.4, "south", None),
        (DAY3, 1, 0.5, "south", None),
        (DAY3, 2, 0.6, "north", None),
    ]
    assert warehouse.query("SELECT customer_id, score, tenure FROM latest_scores_churn ORDER BY 1") == [
        (1, 0.5, 6),
        (2, 0.6, 5),
    ]
    assert warehouse.query("SELECT count(*) FROM scores_churn_v1") == [(6,)]


def test_a_changed_type_is_refused_and_nothing_is_published(warehouse, tmp_path):
    day1 = scores_file(tmp_path / "d1", [1, 2], [0.1, 0.2])
    warehouse.publish_scores(target(), day1, 2, context=raw_context([1, 2], region=pa.array(["n", "s"])))
    day2 = scores_file(tmp_path / "d2", [1, 2], [0.3, 0.4], run_date=DAY2)
    with pytest.raises(
        ContractChange, match=r"region is string, now integer; .* new name\. Nothing was published"
    ):
        warehouse.publish_scores(
            target(day=DAY2), day2, 2, context=raw_context([1, 2], region=pa.array([1, 2]))
        )
    assert warehouse.query("SELECT run_date FROM published_slices") == [(DAY,)]
    assert warehouse.query("SELECT version FROM output_contracts") == [(1,)]
    assert warehouse.query("SELECT count(*) FROM scores_churn") == [(2,)]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([1, 2], "1 scored keys have no raw row for their context columns"),
        ([1, 2, 3, 3], "1 entity keys repeat in the raw partition"),
    ],
)
def test_every_scored_key_needs_exactly_one_raw_row(warehouse, tmp_path, keys, message):
    scores = scores_file(tmp_path / "s", [1, 2, 3], [0.1, 0.5, 0.9])
    context = raw_context(keys, region=pa.array(["x"] * len(keys)))
    with pytest.raises(AuditFailed, match=message):
        warehouse.publish_scores(target(), scores, 3, context=context)
    assert warehouse.query("SELECT count(*) FROM published_slices") == [(0,)]
    assert warehouse.query("SELECT count(*) FROM output_contracts") == [(0,)]


def test_unsupported_context_types_are_refused(warehouse, tmp_path):
    scores = scores_file(tmp_path / "s", [1], [0.1])
    context = raw_context([1], seen_at=pa.array([datetime(2026, 1, 1)], pa.timestamp("us")))
    with pytest.raises(ContractChange, match=r"seen_at \(timestamp\[us\]\) have unsupported types"):
        warehouse.publish_scores(target(), scores, 1, context=context)
    with pytest.raises(ContractChange, match="model_version would shadow a published column"):
        warehouse.publish_scores(target(), scores, 1, context=raw_context([1], model_version=pa.array([1])))
    assert warehouse.query("SELECT count(*) FROM published_slices") == [(0,)]


@pytest.mark.integration
def test_postgres_user_views_on_latest_block_a_change_but_not_the_first_version(pg_url, tmp_path):
    warehouse = open_warehouse(pg_url)
    day0 = scores_file(tmp_path / "d0", [1], [0.05], run_date=DAY - timedelta(days=1))
    warehouse.publish_scores(target(day=DAY - timedelta(days=1)), day0, 1)
    with warehouse.connect() as con:  # a table published before output contracts, with a user view
        con.execute("DELETE FROM output_contracts")
        con.execute("CREATE VIEW my_report AS SELECT customer_id, score FROM latest_scores_churn")
    warehouse.publish_scores(target(), scores_file(tmp_path / "d1", [1], [0.1]), 1)
    assert warehouse.query("SELECT version, columns FROM output_contracts") == [(1, "[]")]
    assert warehouse.query("SELECT customer_id, score FROM my_report") == [(1, 0.1)]

    day2 = scores_file(tmp_path / "d2", [1], [0.2], run_date=DAY2)
    region = raw_context([1], region=pa.array(["n"]))
    with pytest.raises(ContractChange, match="depend on a versioned view scores_churn_v<N> instead"):
        warehouse.publish_scores(target(day=DAY2), day2, 1, context=region)
    assert warehouse.query("SELECT max(run_date) FROM published_slices") == [(DAY,)]
    assert warehouse.query("SELECT version FROM output_contracts") == [(1,)]
    with warehouse.connect() as con:
        con.execute("DROP VIEW my_report")
        con.execute("CREATE VIEW my_report AS SELECT customer_id, score FROM scores_churn_v1")
    warehouse.publish_scores(target(day=DAY2), day2, 1, context=region)
    assert warehouse.query("SELECT score FROM my_report ORDER BY score") == [(0.05,), (0.1,), (0.2,)]
    assert warehouse.query("SELECT customer_id, region FROM latest_scores_churn") == [(1, "n")]


@pytest.mark.parametrize("keys", [STRING_KEYS, INT_KEYS], ids=["string_keys", "integer_keys"])
def test_multiclass_scores_carry_context_after_their_class_columns(warehouse, tmp_path, keys):
    context = pa.table({"member_id": pa.array(keys[::-1]), "tier_hint": pa.array([None, 2, 3])})
    warehouse.publish_scores(mc_target(), mc_file(tmp_path / "a", keys, PROBS), 3, context=context)
    hints = dict(zip(keys[::-1], [None, 2, 3], strict=True))
    rows = warehouse.query("SELECT member_id, predicted_class, p_high, tier_hint FROM scores_tiers_v1")
    assert sorted(rows, key=lambda row: row[0]) == sorted(
        [(keys[i], CLASSES[int(np.argmax(PROBS[i]))], PROBS[i][2], hints[keys[i]]) for i in range(3)],
        key=lambda row: row[0],
    )


def parse_nullable_copy(stream: bytes) -> list[tuple[bytes | None, ...]]:
    """The fields of each row of a binary COPY stream: raw bytes, None for a NULL (length -1)."""
    assert stream[:11] == b"PGCOPY\n\xff\r\n\x00" and stream[-2:] == b"\xff\xff"
    rows, at = [], 19
    while at < len(stream) - 2:
        (count,) = struct.unpack(">h", stream[at : at + 2])
        at, fields = at + 2, []
        for _ in range(count):
            (length,) = struct.unpack(">i", stream[at : at + 4])
            fields.append(None if length == -1 else stream[at + 4 : at + 4 + length])
            at += 4 + max(length, 0)
        rows.append(tuple(fields))
    assert at == len(stream) - 2
    return rows


def test_the_copy_stream_writes_nulls_as_length_minus_one():
    columns = [
        pa.array([7, None, -3]),
        pa.array([None, 2.5, 0.0]),
        pa.array(["é", None, ""]),
        pa.array([True, False, None]),
        pa.array([date(2000, 1, 2), None, date(1999, 12, 31)], pa.date32()),
    ]
    fields, masks = zip(*(context_field(c) for c in columns), strict=True)
    stream = bytes(record_stream([np.arange(3).astype(">i8"), *fields], [None, *masks]))
    assert parse_nullable_copy(stream) == [
        (struct.pack(">q", 0), struct.pack(">q", 7), None, "é".encode(), b"\x01", struct.pack(">i", 1)),
        (struct.pack(">q", 1), None, struct.pack(">d", 2.5), None, b"\x00", None),
        (
            struct.pack(">q", 2),
            struct.pack(">q", -3),
            struct.pack(">d", 0.0),
            b"",
            None,
            struct.pack(">i", -1),
        ),
    ]
    texts = {3: _utf8(fields[2])}
    assert bytes(_scattered_stream([np.arange(3).astype(">i8"), *fields], texts, [None, *masks])) == stream


def test_nullable_streams_match_between_the_padded_and_scattered_layouts():
    rng = np.random.default_rng(5)
    rows = 500
    strings = pa.array(["x" * 2000] + [None if i % 7 == 0 else f"v{i}" for i in range(rows - 1)])
    numbers = pa.array([None if i % 3 == 0 else float(i) for i in range(rows)])
    fields, masks = zip(*(context_field(c) for c in (strings, numbers)), strict=True)
    keys = rng.permutation(rows).astype(">i8")
    padded = bytes(record_stream([keys, *fields], [None, *masks]))
    scattered = bytes(_scattered_stream([keys, *fields], {1: _utf8(fields[0])}, [None, *masks]))
    assert padded == scattered
    parsed = parse_nullable_copy(padded)
    assert sum(row[1] is None for row in parsed) == sum(1 for i in range(1, rows) if (i - 1) % 7 == 0)
    assert sum(row[2] is None for row in parsed) == len(range(0, rows, 3))
