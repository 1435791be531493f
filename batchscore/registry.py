"""The model registry: versioned folders in the lake, aliases with an append-only history.

    models/<model>/versions/<N>/{model.ubj, model.json, model.onnx, reference.parquet, metadata.json}
    models/<model>/aliases.json           current alias -> version
    models/<model>/alias_history.jsonl    every alias move: when, from, to, why

Artifacts are data (XGBoost UBJ/JSON, ONNX, Parquet), never pickle; each is stored with
its SHA-256 in metadata.json and verified before it is used. Registering a version and
moving an alias hold an exclusive lock on the model folder, so two writers cannot both win.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batchscore.errors import PermanentFailure
from batchscore.lake import Lake, file_sha256, write_bytes_atomic


class RegistryError(PermanentFailure, RuntimeError):
    """A model version or alias is missing, or an artifact fails verification."""


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: int
    path: Path
    metadata: dict[str, Any]

    @property
    def feature_set_hash(self) -> str:
        return str(self.metadata["feature_set"]["hash"])

    def artifact(self, name: str) -> Path:
        """Path of an artifact after checking its SHA-256 against the metadata."""
        expected = self.metadata["artifacts"].get(name, {}).get("sha256")
        if expected is None:
            raise RegistryError(f"{self.model} v{self.version} has no artifact {name!r}")
        path = self.path / name
        if not path.is_file():
            raise RegistryError(f"{self.model} v{self.version}: artifact {path} is missing")
        actual = file_sha256(path)
        if actual != expected:
            raise RegistryError(
                f"{self.model} v{self.version}: artifact {name} fails its checksum "
                f"(expected {expected[:12]}…, found {actual[:12]}…); refusing to load it"
            )
        return path


class ModelRegistry:
    """Versions and aliases of one model, stored under the lake's `models/<model>/`."""

    def __init__(self, lake: Lake, model: str):
        self.model = model
        self.lake = lake
        self.root = lake.models_dir(model)
        lake.pull_tree(self.root)  # an S3 lake: bring the registry's current state into the working copy

    def _push(self) -> None:
        """Mirror the registry to an S3 lake: version files first, the aliases last."""
        self.lake.push_tree(self.root, last=("alias_history.jsonl", "aliases.json"))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def versions(self) -> list[int]:
        folder = self.root / "versions"
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())

    def get(self, version: int) -> ModelVersion:
        path = self.root / "versions" / str(version)
        meta_path = path / "metadata.json"
        if not meta_path.is_file():
            known = ", ".join(map(str, self.versions())) or "none"
            raise RegistryError(f"model {self.model} has no version {version} (known: {known})")
        return ModelVersion(self.model, version, path, json.loads(meta_path.read_text()))

    def register(self, artifacts_dir: Path, metadata: dict[str, Any]) -> ModelVersion:
        """Copy the artifacts in as the next version, with checksums, in one rename."""
        files = sorted(p for p in artifacts_dir.iterdir() if p.is_file())
        if not files:
            raise RegistryError(f"no artifacts in {artifacts_dir}")
        with self._locked():
            version = max(self.versions(), default=0) + 1
            staging = self.root / "versions" / f".staging-{uuid.uuid4().hex}"
            staging.mkdir(parents=True)
            try:
                for src in files:
                    shutil.copyfile(src, staging / src.name)
                full = {
                    **metadata,
                    "model": self.model,
                    "version": version,
                    "artifacts": {
                        p.name: {"sha256": file_sha256(staging / p.name), "bytes": p.stat().st_size}
                        for p in files
                    },
                }
                (staging / "metadata.json").write_text(json.dumps(full, indent=2, sort_keys=True))
                staging.rename(self.root / "versions" / str(version))
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            self._push()
        return self.get(version)

    def aliases(self) -> dict[str, int]:
        path = self.root / "aliases.json"
        return {k: int(v) for k, v in json.loads(path.read_text()).items()} if path.is_file() else {}

    def resolve(self, alias: str) -> ModelVersion:
        """The version an alias points at now."""
        version = self.aliases().get(alias)
        if version is None:
            raise RegistryError(
                f"model {self.model} has no {alias!r} alias; train one with `batchscore train`"
            )
        return self.get(version)

    def history(self) -> list[dict[str, Any]]:
        path = self.root / "alias_history.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def move_alias(
        self,
        alias: str,
        version: int,
        *,
        reason: str,
        expected_current: int | str | None = "any",
        evidence: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Point `alias` at `version` and append the move to the history.

        `expected_current` makes the move a compare-and-swap: it fails if another writer
        moved the alias first.
        """
        self.get(version)
        with self._locked():
            current = self.aliases()
            previous = current.get(alias)
            if expected_current != "any" and previous != expected_current:
                raise RegistryError(
                    f"alias {alias!r} of {self.model} moved concurrently: expected "
                    f"{expected_current}, found {previous}"
                )
            event = {
                "at": datetime.now(UTC).isoformat(),
                "alias": alias,
                "from_version": previous,
                "to_version": version,
                "reason": reason,
                "evidence": evidence or {},
            }
            with (self.root / "alias_history.jsonl").open("a") as handle:
                handle.write(json.dumps(event, sort_keys=True) + "\n")
            write_bytes_atomic(
                self.root / "aliases.json",
                json.dumps({**current, alias: version}, indent=2, sort_keys=True).encode(),
            )
            self._push()
        return event
