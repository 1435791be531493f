"""Stage fingerprints: when a rerun or a retry may reuse a stage's output instead of recomputing it.

A stage's fingerprint is a SHA-256 over everything that decides its output: its inputs'
checksums, the code and definitions that compute it, the model that scores, the settings that
change values. The stage writes it into its output partition's manifest (`_batchscore.json`),
with its result and its data files' sizes, inside the staged partition, so it is committed with
the data. A later run whose fingerprint equals a complete partition's returns that result with
`reused: true` and leaves the partition untouched; any difference recomputes and replaces the
partition atomically, as a first run does. `force` always recomputes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batchscore.storage.lake import ChecksumMismatch, Lake, PartitionError, data_files

MANIFEST = "_batchscore.json"


def digest(parts: Mapping[str, Any]) -> str:
    """SHA-256 of a canonical JSON rendering (sorted keys) of `parts`."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def source_hashes(modules: Sequence[str]) -> dict[str, str]:
    """module -> SHA-256 of its source (of its compiled code where only bytecode ships)."""
    hashes = {}
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            raise ModuleNotFoundError(f"cannot fingerprint {name}: module not found")
        loader: Any = spec.loader
        source = loader.get_source(name)
        body = source.encode() if source is not None else bytes(loader.get_code(name).co_code)
        hashes[name] = hashlib.sha256(body).hexdigest()
    return hashes


def file_sizes(partition: Path) -> dict[str, int]:
    """The partition's data files and their sizes: what a reused partition must still hold."""
    return {p.name: p.stat().st_size for p in data_files(partition)}


def write_manifest(
    staging: Path, fingerprint: str, result: Mapping[str, Any], **extra: Any
) -> dict[str, Any]:
    """Write the stage manifest into a staged partition (after its data files, before its commit)."""
    manifest = {
        **extra,
        "fingerprint": fingerprint,
        "computed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": file_sizes(staging),
        "result": dict(result),
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
    return manifest


def stored_manifest(lake: Lake, partition: Path) -> dict[str, Any] | None:
    """A complete partition's manifest, or None (missing, incomplete, unreadable, or files changed)."""
    try:
        if not lake.available(partition):
            return None
    except (PartitionError, ChecksumMismatch):
        return None
    try:
        manifest = json.loads((partition / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("files") != file_sizes(partition):
        return None
    return manifest


def reusable(
    lake: Lake, partitions: Sequence[Path], fingerprint: str, started: float
) -> dict[str, Any] | None:
    """The first partition's stored result, marked `reused`, when every partition is complete and
    carries `fingerprint`; None when any must be recomputed.

    `seconds` stays what computing the output took; `reuse_seconds` is what this check took.
    """
    manifests = [stored_manifest(lake, partition) for partition in partitions]
    if not manifests or any(m is None or m.get("fingerprint") != fingerprint for m in manifests):
        return None
    first = manifests[0]
    if first is None or not isinstance(first.get("result"), dict):
        return None
    return {
        **first["result"],
        "reused": True,
        "computed_at": first.get("computed_at"),
        "reuse_seconds": round(time.perf_counter() - started, 3),
    }


def read_manifest(partition: Path) -> dict[str, Any]:
    """A features partition's manifest (its rows, feature set and fingerprint); fails when missing."""
    path = partition / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"features partition {partition} has no {MANIFEST}; rebuild it")
    return dict(json.loads(path.read_text()))
