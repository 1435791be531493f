"""Partition manifests: one format, one reader; the files keep the keys earlier versions wrote."""

from __future__ import annotations

import json

import pytest

from batchscore.storage.lake import REASONS_MANIFEST, PartitionError
from batchscore.storage.manifest import (
    BadManifest,
    QuarantineManifest,
    ReasonsManifest,
    StageManifest,
    read_manifest,
    write_manifest,
)
from batchscore.storage.reuse import MANIFEST, features_manifest, record_stage

FEATURES_BEFORE = {  # a features manifest as build_features wrote it before the typed record
    "computed_at": "2026-11-21T02:00:00+00:00",
    "files": {"part-00000.parquet": 1234},
    "fingerprint": "f" * 64,
    "result": {"stage": "build_features", "rows": 3, "seconds": 1.5},
    "pipeline": "churn",
    "run_date": "2026-11-21",
    "feature_set": {"name": "churn", "version": "1", "hash": "h" * 64},
    "columns": ["customer_id", "tenure"],
    "rows": 3,
    "input_partition": "/lake/raw/customers/dt=2026-11-21",
    "input_checksum": "c" * 64,
}


def test_a_manifest_written_before_reads_the_same_and_writes_back_its_keys(tmp_path):
    (tmp_path / MANIFEST).write_text(json.dumps(FEATURES_BEFORE))
    manifest = features_manifest(tmp_path)
    assert (manifest.rows, manifest.input_checksum, manifest.feature_set_hash) == (3, "c" * 64, "h" * 64)
    assert manifest.to_json() == FEATURES_BEFORE
    write_manifest(tmp_path / "again", manifest)
    assert json.loads((tmp_path / "again" / MANIFEST).read_text()) == FEATURES_BEFORE


def test_a_scores_manifest_keeps_only_the_stage_keys(tmp_path):
    (tmp_path / "part-00000.parquet").write_bytes(b"12345")
    record_stage(tmp_path, "fp", {"stage": "score", "rows": 5})
    written = json.loads((tmp_path / MANIFEST).read_text())
    assert set(written) == {"fingerprint", "computed_at", "files", "result"}
    assert written["files"] == {"part-00000.parquet": 5}


def test_each_kind_has_its_file_and_round_trips(tmp_path):
    reasons = ReasonsManifest(model_version=2, top_k=3, scores_checksum="s", method="exact", rows=9)
    quarantine = QuarantineManifest(raw_checksum="r", quarantined_rows=0)
    for manifest in (reasons, quarantine):
        write_manifest(tmp_path, manifest)
        assert read_manifest(tmp_path, type(manifest)) == manifest
    assert (tmp_path / REASONS_MANIFEST).is_file() and (tmp_path / "_QUARANTINE.json").is_file()
    # the quarantine verdict has always written its empty clean partition as null
    assert json.loads((tmp_path / "_QUARANTINE.json").read_text())["clean_checksum"] is None


def test_a_missing_manifest_names_the_partition_and_the_file(tmp_path):
    with pytest.raises(BadManifest, match=r"features partition .* has no _batchscore.json; rebuild it"):
        features_manifest(tmp_path)
    with pytest.raises(PartitionError, match=r"has no _reasons.json"):
        read_manifest(tmp_path, ReasonsManifest, "reasons partition")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "unreadable manifest"),
        ("[1, 2]", "expected a JSON object, found list"),
        (json.dumps({"model_version": 2, "top_k": 3}), "field 'scores_checksum' is missing"),
        (json.dumps({"model_version": "2", "top_k": 3, "scores_checksum": "s"}), "'model_version' must be"),
        (json.dumps({"model_version": True, "top_k": 3, "scores_checksum": "s"}), "'model_version' must be"),
        (
            json.dumps(
                {"model_version": 2, "top_k": 3, "scores_checksum": "s", "mean_abs_contribution": {"a": "x"}}
            ),
            "'mean_abs_contribution' must be",
        ),
    ],
)
def test_a_malformed_manifest_names_the_file_and_the_field(tmp_path, body, message):
    (tmp_path / REASONS_MANIFEST).write_text(body)
    with pytest.raises(BadManifest, match=message) as caught:
        read_manifest(tmp_path, ReasonsManifest)
    assert str(tmp_path / REASONS_MANIFEST) in str(caught.value)


def test_a_field_a_reader_needs_but_the_writer_left_out_fails_clearly(tmp_path):
    (tmp_path / MANIFEST).write_text(json.dumps({"fingerprint": "fp"}))
    manifest = read_manifest(tmp_path, StageManifest)
    with pytest.raises(BadManifest, match="field 'rows' is missing"):
        manifest.need(manifest.rows, "rows")
    with pytest.raises(BadManifest, match="'feature_set' is missing"):
        _ = manifest.feature_set_hash
