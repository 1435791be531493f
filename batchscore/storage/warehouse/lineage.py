"""Slice lineage: what each published slice was computed from, so a rerun can tell it is a no-op.

Migration 7 adds to `published_slices` the slice's `input_checksum` (the raw partition its
features were built from) and `scores_fingerprint` (the score stage's fingerprint: features,
model version and artifact, inference settings, scoring code), written in the publish's own
transaction. A rerun whose scores carry the same fingerprint, from the same input checksum and
with the same row count, leaves the slice as it is (`jobs.publish`). Slices published before
this migration have NULLs and are republished once.
"""

from __future__ import annotations

LINEAGE_MIGRATION: tuple[int, str, list[str]] = (
    7,
    "what each published slice was computed from (no-op reruns)",
    [
        "ALTER TABLE published_slices ADD COLUMN input_checksum VARCHAR",
        "ALTER TABLE published_slices ADD COLUMN scores_fingerprint VARCHAR",
    ],
)

PUBLISHED_LINEAGE_SQL = """SELECT row_count, input_checksum, scores_fingerprint, run_id, published_at
    FROM published_slices
    WHERE scores_table = ? AND pipeline = ? AND run_date = ? AND model_version = ?"""
"""The lineage of one published slice (`?` placeholders: both warehouses' `query`)."""
