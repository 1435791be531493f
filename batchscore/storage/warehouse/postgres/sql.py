"""Small PostgreSQL helpers: advisory lock keys, the warehouse URL's schema, placeholder style,
and the SQL of a slice's staged partition."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from batchscore.storage.warehouse.contract import ScoresSlice, UnsupportedWarehouse, validate_identifier
from batchscore.storage.warehouse.multiclass import class_columns, columns_sql, range_check_sql


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


def partition_sql(
    target: ScoresSlice, part: Any, k: Any, key_type: str, partition_name: str, context: str = ""
) -> Any:
    """CREATE TABLE for a slice's staged partition: the slice's constants as defaults and CHECK
    constraints, and for multiclass scores each probability in [0, 1] and the class one of the classes;
    `context` is the column list of every stored context column (`, "name" TYPE...`)."""
    from psycopg import sql

    lit, prefix = sql.Literal, partition_name[:50]
    classes_check = (
        sql.SQL(", CONSTRAINT {} CHECK ({})").format(
            sql.Identifier(validate_identifier(f"{prefix}_classes")), sql.SQL(range_check_sql(target.classes))
        )
        if target.classes
        else sql.SQL("")
    )
    return sql.SQL(
        """CREATE TABLE {part} (
        {k} {key_type} NOT NULL, run_date DATE NOT NULL DEFAULT {run_date},
        pipeline TEXT NOT NULL DEFAULT {pipeline}, model_name TEXT NOT NULL DEFAULT {model_name},
        model_version INTEGER NOT NULL DEFAULT {version},
        score DOUBLE PRECISION NOT NULL{extra}, run_id TEXT NOT NULL DEFAULT {run_id}{context},
        CONSTRAINT {slice_check} CHECK (pipeline = {pipeline} AND run_date = {run_date}
                                        AND model_version = {version}),
        CONSTRAINT {score_check} CHECK ({score_range}){classes_check})"""
    ).format(
        part=part,
        k=k,
        key_type=sql.SQL(key_type),
        extra=sql.SQL(columns_sql(target.classes, "TEXT")),
        score_range=sql.SQL(
            "score >= 0 AND score <= 1"
            if target.probability
            else "score > '-Infinity'::float8 AND score < 'Infinity'::float8"
        ),
        run_date=lit(target.run_date),
        pipeline=lit(target.pipeline),
        model_name=lit(target.model_name),
        version=lit(target.model_version),
        run_id=lit(target.run_id),
        slice_check=sql.Identifier(validate_identifier(f"{prefix}_slice")),
        score_check=sql.Identifier(validate_identifier(f"{prefix}_score")),
        classes_check=classes_check,
        context=sql.SQL(context),
    )


def copy_columns(k: Any, classes: tuple[str, ...], context: tuple[str, ...] = ()) -> Any:
    """The COPY column list: key, score, for multiclass scores predicted_class and the p_ columns,
    then the context columns."""
    from psycopg import sql

    names = ["score", *class_columns(classes), *context]
    return sql.SQL(", ").join([k, *(sql.Identifier(validate_identifier(name)) for name in names)])


def pg_run(con: Any) -> Any:
    """Run one statement (`?` placeholders) on a psycopg connection; a SELECT's rows, else []."""

    def run(statement: str, params: Any) -> list[tuple[Any, ...]]:
        cursor = con.execute(to_pyformat(statement) if params else statement, list(params) or None)
        return list(cursor.fetchall()) if cursor.description else []

    return run
