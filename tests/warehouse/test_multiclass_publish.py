"""Multiclass scores (the top class, its probability and one p_<class> per class) on both warehouses."""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchscore.storage.warehouse import (
    AuditFailed,
    InvalidIdentifier,
    ScoresSlice,
    audit_scores,
    open_warehouse,
)
from batchscore.storage.warehouse.postgres.binary import (
    _scattered_stream,
    _utf8,
    copy_stream,
    key_score_rows,
    record_stream,
    text_key_score_rows,
)
from tests.warehouse.slices import DAY, scores_file

CLASSES = ("low", "mid", "high")
PROBS = [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.25, 0.5, 0.25]]
STRING_KEYS = ["c-3", "c-1", "c-2"]
INT_KEYS = [30, 10, 20]


def mc_table(keys, probs, classes=CLASSES, version=1, **override) -> pa.Table:  # type: ignore[no-untyped-def]
    """A multiclass scores partition as `jobs.score` writes it; `override` replaces or (None) drops columns."""
    matrix = np.asarray(probs, dtype=np.float64)
    n = len(keys)
    key_type = pa.string() if isinstance(keys[0], str) else pa.int64()
    columns: dict[str, pa.Array] = {
        "member_id": pa.array(keys, key_type),
        "score": pa.array(matrix.max(axis=1), pa.float64()),
        "model_version": pa.array([version] * n, pa.int64()),
        "run_date": pa.array([DAY] * n, pa.date32()),
        "predicted_class": pa.array([classes[i] for i in matrix.argmax(axis=1)], pa.string()),
    }
    columns.update({f"p_{c}": pa.array(matrix[:, j], pa.float64()) for j, c in enumerate(classes)})
    for name, values in override.items():
        if values is None:
            columns.pop(name)
        else:
            columns[name] = pa.array(values, columns[name].type)
    return pa.table(columns)


def mc_file(folder: Path, keys, probs, **kwargs) -> Path:  # type: ignore[no-untyped-def]
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(mc_table(keys, probs, **kwargs), folder / "part-0.parquet")
    return folder


def mc_target(run_id: str = "run-1", version: int = 1, classes=CLASSES) -> ScoresSlice:  # type: ignore[no-untyped-def]
    return ScoresSlice(
        "tiers", "scores_tiers", "member_id", DAY, "tiers_xgb", version, run_id, "multiclass", classes
    )


@pytest.mark.parametrize("keys", [STRING_KEYS, INT_KEYS], ids=["string_keys", "integer_keys"])
def test_multiclass_slice_publishes_reads_back_and_republishes(warehouse, tmp_path, keys):
    first = mc_file(tmp_path / "a", keys, PROBS)
    assert warehouse.publish_scores(mc_target(), first, expected_rows=3).replaced_rows == 0
    order = sorted(range(3), key=lambda i: keys[i])
    rows = warehouse.query("SELECT * FROM scores_tiers ORDER BY member_id")
    assert rows == [
        (
            keys[i],
            DAY,
            "tiers",
            "tiers_xgb",
            1,
            max(PROBS[i]),
            CLASSES[int(np.argmax(PROBS[i]))],
            *PROBS[i],
            "run-1",
        )
        for i in order
    ]
    # republishing the slice replaces it
    again = [[0.1, 0.1, 0.8], [0.8, 0.1, 0.1], [0.05, 0.9, 0.05]]
    result = warehouse.publish_scores(
        mc_target("run-2"), mc_file(tmp_path / "b", keys, again), expected_rows=3
    )
    assert result.replaced_rows == 3
    assert warehouse.query(
        "SELECT member_id, predicted_class, p_high, run_id FROM scores_tiers ORDER BY 1"
    ) == [(keys[i], CLASSES[int(np.argmax(again[i]))], again[i][2], "run-2") for i in order]
    assert warehouse.query("SELECT run_id, row_count FROM published_slices") == [("run-2", 3)]
    # a second model version of one entity: the latest view shows its class and probabilities
    newer = mc_file(tmp_path / "c", keys[:1], [[0.2, 0.7, 0.1]], version=2)
    warehouse.publish_scores(mc_target(version=2), newer, expected_rows=1)
    latest = warehouse.query(
        "SELECT member_id, model_version, score, predicted_class, p_low, p_mid, p_high FROM latest_scores_tiers "
        "ORDER BY 1"
    )
    expected_latest = {
        keys[i]: (keys[i], 1, max(again[i]), CLASSES[int(np.argmax(again[i]))], *again[i]) for i in order
    }
    expected_latest[keys[0]] = (keys[0], 2, 0.7, "mid", 0.2, 0.7, 0.1)
    assert latest == [expected_latest[k] for k in sorted(keys)]
    by_day = warehouse.query(
        "SELECT model_version, rows, share_low, share_mid, share_high FROM scores_tiers_by_day ORDER BY 1"
    )
    assert by_day == [
        (1, 3, pytest.approx(1 / 3), pytest.approx(1 / 3), pytest.approx(1 / 3)),
        (2, 1, 0.0, 1.0, 0.0),
    ]
    columns = warehouse.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'scores_tiers_by_day'"
    )
    assert "share_above_half" not in {name for (name,) in columns}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"predicted_class": ["low", "medium", "mid"]}, "1 predicted classes not in (low, mid, high)"),
        ({"predicted_class": ["low", None, "mid"]}, "1 null predicted classes"),
        ({"p_low": [0.7, 0.2, 0.25]}, "1 rows whose probabilities do not sum to 1 (within 0.001)"),
        ({"score": [0.7, 0.5, 0.5]}, "1 scores not the top class's probability"),
        ({"p_low": [1.2, 0.1, 0.25], "p_mid": [-0.3, 0.3, 0.5]}, "1 p_mid outside [0, 1] or NaN"),
        ({"p_mid": [0.2, None, 0.5]}, "1 null p_mid"),
        ({"p_high": None}, "lack the multiclass columns p_high"),
        ({"predicted_class": None}, "lack the multiclass columns predicted_class"),
    ],
    ids=[
        "class_outside",
        "null_class",
        "sum_not_1",
        "score_not_max",
        "outside_0_1",
        "null_p",
        "no_p",
        "no_class",
    ],
)
def test_multiclass_audit_failure_publishes_nothing(warehouse, tmp_path, override, message):
    good = mc_file(tmp_path / "good", STRING_KEYS, PROBS)
    warehouse.publish_scores(mc_target(), good, expected_rows=3)
    before = warehouse.query("SELECT * FROM scores_tiers ORDER BY member_id")
    bad = mc_file(tmp_path / "bad", STRING_KEYS, PROBS, **override)
    with pytest.raises(AuditFailed) as err:
        warehouse.publish_scores(mc_target("run-bad"), bad, expected_rows=3)
    assert message in str(err.value)
    assert "nothing was published" in str(err.value)
    assert warehouse.query("SELECT * FROM scores_tiers ORDER BY member_id") == before
    assert warehouse.query("SELECT run_id FROM published_slices") == [("run-1",)]


def test_a_table_created_for_other_classes_refuses_the_publish(warehouse_url, tmp_path):
    warehouse = open_warehouse(warehouse_url)
    warehouse.publish_scores(mc_target(), mc_file(tmp_path / "a", STRING_KEYS, PROBS), expected_rows=3)
    other = ("bronze", "silver", "gold")
    path = mc_file(tmp_path / "b", STRING_KEYS, PROBS, classes=other)
    for publisher in (warehouse, open_warehouse(warehouse_url)):  # cached and fresh table checks
        with pytest.raises(AuditFailed) as err:
            publisher.publish_scores(mc_target("run-other", classes=other), path, expected_rows=3)
        assert "table scores_tiers stores multiclass scores of classes (low, mid, high)" in str(err.value)
        assert "these are multiclass scores of classes (bronze, silver, gold)" in str(err.value)
    # the same classes in another order name other columns: refused too
    reordered = ("high", "mid", "low")
    with pytest.raises(AuditFailed, match=r"these are multiclass scores of classes \(high, mid, low\)"):
        warehouse.publish_scores(
            mc_target("run-reordered", classes=reordered),
            mc_file(tmp_path / "c", STRING_KEYS, PROBS, classes=reordered),
            expected_rows=3,
        )
    # binary scores into the multiclass table
    binary = replace(mc_target("run-binary"), task="binary", classes=())
    string_binary = tmp_path / "d"
    string_binary.mkdir()
    pq.write_table(
        mc_table(STRING_KEYS, PROBS).select(["member_id", "score", "model_version", "run_date"]),
        string_binary / "part-0.parquet",
    )
    with pytest.raises(AuditFailed, match="these are scores without classes"):
        warehouse.publish_scores(binary, string_binary, expected_rows=3)
    assert warehouse.query("SELECT DISTINCT run_id FROM scores_tiers") == [("run-1",)]


def test_a_binary_table_refuses_multiclass_scores(warehouse, tmp_path):
    binary = ScoresSlice("churn", "scores_churn", "customer_id", DAY, "churn_xgb", 1, "run-1")
    warehouse.publish_scores(binary, scores_file(tmp_path / "a", [1, 2, 3], [0.1, 0.5, 0.9]), expected_rows=3)
    table = mc_table(INT_KEYS, PROBS).rename_columns(
        ["customer_id", *mc_table(INT_KEYS, PROBS).column_names[1:]]
    )
    (tmp_path / "b").mkdir()
    pq.write_table(table, tmp_path / "b" / "part-0.parquet")
    multiclass = replace(binary, run_id="run-2", task="multiclass", classes=CLASSES)
    with pytest.raises(AuditFailed) as err:
        warehouse.publish_scores(multiclass, tmp_path / "b", expected_rows=3)
    assert "table scores_churn stores scores without classes" in str(err.value)
    assert "nothing was published" in str(err.value)
    assert warehouse.query("SELECT customer_id, score, run_id FROM scores_churn ORDER BY 1") == [
        (1, 0.1, "run-1"),
        (2, 0.5, "run-1"),
        (3, 0.9, "run-1"),
    ]


def test_multiclass_audit_is_a_pure_function_of_the_scores():
    assert audit_scores(mc_table(STRING_KEYS, PROBS), mc_target(), 3) == []
    failures = audit_scores(
        mc_table(STRING_KEYS, PROBS, predicted_class=["x", "y", "mid"], p_low=[0.7, 0.2, 0.25]),
        mc_target(),
        3,
    )
    assert failures == [
        "2 predicted classes not in (low, mid, high)",
        "1 rows whose probabilities do not sum to 1 (within 0.001)",
    ]
    assert audit_scores(mc_table(STRING_KEYS, PROBS, p_mid=None), mc_target(), 3) == ["missing columns p_mid"]
    # probabilities summing to 1 within 1e-3 pass; a score off the top one by more than 1e-9 does not
    assert audit_scores(mc_table(STRING_KEYS, PROBS, p_low=[0.7, 0.1, 0.2505]), mc_target(), 3) == []
    assert audit_scores(mc_table(STRING_KEYS, PROBS, score=[0.7 + 1e-8, 0.6, 0.5]), mc_target(), 3) == [
        "1 scores not the top class's probability"
    ]


def test_class_names_are_validated():
    with pytest.raises(InvalidIdentifier):
        mc_target(classes=("low", "Mid", "high"))
    with pytest.raises(InvalidIdentifier):
        mc_target(classes=("low", "low", "high"))
    with pytest.raises(ValueError, match="multiclass scores only"):
        replace(mc_target(), task="binary")
    assert mc_target(classes=["a", "b", "c"]).classes == ("a", "b", "c")  # type: ignore[arg-type]


def parse_copy(stream: bytes) -> list[tuple[bytes, ...]]:
    """The fields of each row of a binary COPY stream, as raw bytes."""
    assert stream[:11] == b"PGCOPY\n\xff\r\n\x00" and stream[-2:] == b"\xff\xff"
    rows, at = [], 19
    while at < len(stream) - 2:
        (count,) = struct.unpack(">h", stream[at : at + 2])
        at, fields = at + 2, []
        for _ in range(count):
            (length,) = struct.unpack(">i", stream[at : at + 4])
            fields.append(stream[at + 4 : at + 4 + length])
            at += 4 + length
        rows.append(tuple(fields))
    assert at == len(stream) - 2
    return rows


@pytest.mark.parametrize("keys", [STRING_KEYS, INT_KEYS], ids=["string_keys", "integer_keys"])
def test_multiclass_copy_stream_layout(keys):
    table = mc_table(keys, PROBS)
    rows = parse_copy(bytes(copy_stream(table, "member_id", CLASSES)))
    order = sorted(range(3), key=lambda i: keys[i])
    key_bytes = (lambda k: k.encode()) if isinstance(keys[0], str) else (lambda k: struct.pack(">q", k))
    assert rows == [
        (
            key_bytes(keys[i]),
            struct.pack(">d", max(PROBS[i])),
            CLASSES[int(np.argmax(PROBS[i]))].encode(),
            *(struct.pack(">d", p) for p in PROBS[i]),
        )
        for i in order
    ]


def test_the_generic_stream_matches_the_binary_fast_paths_byte_for_byte():
    rng = np.random.default_rng(7)
    keys, scores = rng.integers(-(2**40), 2**40, 1000), rng.random(1000)
    assert bytes(record_stream([keys.astype(">i8"), scores.astype(">f8")])) == bytes(
        key_score_rows(keys, scores)
    )
    text = pa.array([f"k{i}é" * (i % 4) for i in range(1001)]).slice(1)
    assert bytes(record_stream([text, scores.astype(">f8")])) == bytes(text_key_score_rows(text, scores))
    # without classes, copy_stream takes the fast paths unchanged
    binary = pa.table({"k": pa.array(keys), "score": pa.array(scores)})
    order = np.argsort(keys, kind="stable")
    assert bytes(copy_stream(binary, "k")) == bytes(key_score_rows(keys[order], scores[order]))


def test_the_scattered_stream_for_long_strings_matches_the_padded_one():
    rng = np.random.default_rng(11)
    keys = pa.array(["x" * 3000] + [f"k{i}" for i in range(199)])
    classes = pa.array(rng.choice(["a", "bb", ""], 200))
    fields = [keys, rng.random(200).astype(">f8"), classes, rng.integers(0, 9, 200).astype(">i8")]
    texts = {0: _utf8(keys), 2: _utf8(classes)}
    assert bytes(_scattered_stream(fields, texts)) == bytes(record_stream(fields))
