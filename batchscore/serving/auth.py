"""Bearer tokens with per-pipeline read scopes, stored hashed outside the code.

The tokens file (BATCHSCORE_SERVE_TOKENS_FILE) is a JSON object mapping the SHA-256 hex digest
of each token to the pipelines it may read (`"*"`: all). A request's token is hashed and
compared with every stored digest in constant time (`hmac.compare_digest`), so neither the
tokens nor the timing of a comparison reveal one. The file is re-read when it changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
from pathlib import Path


class BadTokensFile(ValueError):
    """The tokens file is missing, not JSON, or not {"<64 hex>": ["pipeline", ...]}."""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_tokens(text: str, where: str) -> dict[str, frozenset[str]]:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadTokensFile(f"{where}: not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise BadTokensFile(f'{where}: expected {{"<sha256 hex of a token>": ["pipeline" or "*", ...]}}')
    tokens = {}
    for digest, scopes in raw.items():
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise BadTokensFile(f"{where}: {digest[:12]!r}... is not a lower-case SHA-256 hex digest")
        if not isinstance(scopes, list) or not all(isinstance(s, str) and s for s in scopes):
            raise BadTokensFile(f"{where}: the scopes of {digest[:12]}... are not a list of pipeline names")
        tokens[digest] = frozenset(scopes)
    return tokens


class TokenStore:
    """The tokens file's hashed tokens and scopes, reloaded when the file's mtime changes."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._tokens: dict[str, frozenset[str]] = {}
        self._reload()

    def _reload(self) -> None:
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp:
                self._tokens = parse_tokens(self.path.read_text(), str(self.path))
                self._stamp = stamp
        except OSError as exc:
            raise BadTokensFile(f"tokens file {self.path}: {exc}") from None

    def scopes(self, token: str) -> frozenset[str] | None:
        """The pipelines this token may read, or None for an unknown token."""
        with self._lock:
            with contextlib.suppress(BadTokensFile):  # keep serving the last good file
                self._reload()
            tokens = self._tokens
        digest, found = token_digest(token), None
        for stored, scopes in tokens.items():  # every digest is compared: the time does not depend on a match
            if hmac.compare_digest(stored, digest):
                found = scopes
        return found


def allows(scopes: frozenset[str], pipeline: str) -> bool:
    return "*" in scopes or pipeline in scopes
