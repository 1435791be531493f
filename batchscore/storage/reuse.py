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

import ast
import dis
import hashlib
import importlib.machinery
import importlib.util
import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import CodeType
from typing import Any

from batchscore.storage.lake import ChecksumMismatch, Lake, PartitionError, data_files
from batchscore.storage.manifest import BadManifest, StageManifest, read_manifest, write_manifest

MANIFEST = StageManifest.FILE


def digest(parts: Mapping[str, Any]) -> str:
    """SHA-256 of a canonical JSON rendering (sorted keys) of `parts`."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


FIRST_PARTY = ("batchscore", "features", "jobs")
"""Top-level packages whose code is followed through imports (third-party code is pinned by the
environment, not fingerprinted)."""


def code_hashes(roots: Sequence[str]) -> dict[str, str]:
    """module -> SHA-256 of its code, for `roots` and every first-party module they import,
    directly or through others, lazy and TYPE_CHECKING imports included, and the packages
    whose `__init__` those imports run.

    The code an output depends on is derived from the import graph, never listed by hand, so
    an edit to any module on the way changes the fingerprint. A root that cannot be found
    raises ModuleNotFoundError.
    """
    hashes: dict[str, str] = {}
    pending = list(roots)
    followed = {*FIRST_PARTY, *(root.split(".")[0] for root in roots)}
    while pending:
        name = pending.pop()
        if name in hashes:
            continue
        found = _module_code(name)
        if found is None:
            if name in roots:
                raise ModuleNotFoundError(f"cannot fingerprint {name}: module not found")
            continue  # a guarded optional import: code that is not there decides nothing
        body, imported = found
        hashes[name] = hashlib.sha256(body).hexdigest()
        pending.extend(m for m in imported if m.split(".")[0] in followed and m not in hashes)
    return dict(sorted(hashes.items()))


def _module_code(name: str) -> tuple[bytes, set[str]] | None:
    """A module's source (its compiled code where only bytecode ships) and the modules its
    imports may load; None when it cannot be found."""
    parent = name.rpartition(".")[0]
    try:
        # `from a.b import c`: c is a module only when a.b is a package; finding a.b.c would
        # otherwise run a.b itself, which may import heavy libraries
        if parent and _find(parent).submodule_search_locations is None:
            return None
        spec = _find(name)
    except ModuleNotFoundError:
        return None
    if spec.loader is None or not hasattr(spec.loader, "get_code"):
        return None
    loader: Any = spec.loader
    package = name if spec.submodule_search_locations is not None else name.rpartition(".")[0]
    source = loader.get_source(name)
    if source is not None:
        return source.encode(), _imports_in_source(source, package)
    code = loader.get_code(name)
    if code is None:
        return None
    return _code_bytes(code), _imports_in_code(code, package)


def _find(name: str) -> importlib.machinery.ModuleSpec:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as exc:
        raise ModuleNotFoundError(name) from exc
    if spec is None:
        raise ModuleNotFoundError(name)
    return spec


def _imports_in_source(source: str, package: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.update(_with_parents(alias.name))
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module or "", node.level, package)
            found.update(_with_parents(base))
            # `from batchscore.models import registry` names a module; other names are skipped
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def _imports_in_code(code: CodeType, package: str) -> set[str]:
    """The same as `_imports_in_source`, read from bytecode (IMPORT_NAME after its level and
    names, in nested functions too)."""
    found: set[str] = set()
    consts: list[Any] = []
    for instruction in dis.get_instructions(code):
        if instruction.opname == "LOAD_CONST":
            consts.append(instruction.argval)
        elif instruction.opname == "IMPORT_NAME" and len(consts) >= 2:
            level, names = consts[-2], consts[-1] or ()
            base = _absolute(instruction.argval, int(level or 0), package)
            found.update(_with_parents(base))
            found.update(f"{base}.{n}" for n in names if n != "*")
    for const in code.co_consts:
        if isinstance(const, CodeType):
            found |= _imports_in_code(const, package)
    return found


def _absolute(module: str, level: int, package: str) -> str:
    if not level:
        return module
    anchor = package.split(".")[: len(package.split(".")) - level + 1]
    return ".".join([*anchor, module] if module else anchor)


def _with_parents(module: str) -> list[str]:
    """`a.b.c` -> a, a.b, a.b.c: importing a module runs its packages' `__init__` first."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts)) if parts[0]]


def _code_bytes(code: CodeType) -> bytes:
    """Compiled code without its file name (which differs between machines): instructions,
    names and constants, nested functions included."""
    parts = [code.co_code, repr(code.co_names).encode()]
    for const in code.co_consts:
        parts.append(_code_bytes(const) if isinstance(const, CodeType) else repr(const).encode())
    return b"\0".join(parts)


def file_sizes(partition: Path) -> dict[str, int]:
    """The partition's data files and their sizes: what a reused partition must still hold."""
    return {p.name: p.stat().st_size for p in data_files(partition)}


def record_stage(staging: Path, fingerprint: str, result: Mapping[str, Any], **lineage: Any) -> StageManifest:
    """Write the stage manifest into a staged partition (after its data files, before its commit);
    `lineage`: the other `StageManifest` fields (a features partition's feature set, rows, input)."""
    manifest = StageManifest(
        fingerprint=fingerprint,
        computed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        files=file_sizes(staging),
        result=dict(result),
        **lineage,
    )
    write_manifest(staging, manifest)
    return manifest


def stored_manifest(lake: Lake, partition: Path) -> StageManifest | None:
    """A complete partition's manifest, or None (missing, incomplete, unreadable, or files changed)."""
    try:
        if not lake.available(partition):
            return None
    except (PartitionError, ChecksumMismatch):
        return None
    try:
        manifest = read_manifest(partition, StageManifest)
    except BadManifest:
        return None
    if manifest.files != file_sizes(partition):
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
    if not manifests or any(m is None or m.fingerprint != fingerprint for m in manifests):
        return None
    first = manifests[0]
    if first is None or first.result is None:
        return None
    return {
        **first.result,
        "reused": True,
        "computed_at": first.computed_at,
        "reuse_seconds": round(time.perf_counter() - started, 3),
    }


def features_manifest(partition: Path) -> StageManifest:
    """A features partition's manifest (its rows, feature set and fingerprint); fails when missing."""
    return read_manifest(partition, StageManifest, "features partition", "rebuild it")
