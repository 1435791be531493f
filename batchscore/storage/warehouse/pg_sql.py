"""Small PostgreSQL helpers: advisory lock keys, the warehouse URL's schema, placeholder style."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from batchscore.storage.warehouse.contract import UnsupportedWarehouse, validate_identifier


def lock_key(*parts: object) -> int:
    """A signed 64-bit advisory lock key for a tuple of names (stable across processes)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def split_url(url: str) -> tuple[str, str]:
    """(libpq connection URL, schema) from `postgresql://...[?schema=name]`; the schema defaults to public."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
        raise UnsupportedWarehouse(f"warehouse URL {url!r}: expected postgresql://user@host:port/database")
    query = parse_qsl(parts.query)
    schemas = [value for name, value in query if name == "schema"]
    schema = validate_identifier(schemas[-1] if schemas else "public", "schema name")
    rest = urlencode([(name, value) for name, value in query if name != "schema"])
    return urlunsplit(("postgresql", parts.netloc, parts.path, rest, "")), schema


def to_pyformat(query: str) -> str:
    """Rewrite `?` placeholders (the callers' DuckDB style) as psycopg's `%s`, outside string literals."""
    out, in_literal = [], False
    for char in query:
        if char == "'":
            in_literal = not in_literal
        if char == "%":
            out.append("%%")
        elif char == "?" and not in_literal:
            out.append("%s")
        else:
            out.append(char)
    return "".join(out)
