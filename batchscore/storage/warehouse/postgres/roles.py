"""The PostgreSQL warehouse's writer and analyst roles (see `PostgresWarehouse.init_roles`)."""

from __future__ import annotations

from typing import Any


def grant_roles(con: Any, schema_name: str, writer: str, analyst: str) -> int:
    """Create the roles if missing, hand the schema's tables and views to the writer, let the analyst read.

    Runs inside the caller's transaction (which holds the roles lock); the names are already
    validated. Returns how many tables and views were handed to the writer.
    """
    from psycopg import sql

    w, a = sql.Identifier(writer), sql.Identifier(analyst)
    schema = sql.Identifier(schema_name)
    database = sql.Identifier(con.execute("SELECT current_database()").fetchone()[0])
    for name, role in ((writer, w), (analyst, a)):
        if con.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone() is None:
            con.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
        con.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, role))
    con.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}").format(schema, w))
    con.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, a))
    con.execute(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(schema, a))
    owned = con.execute(
        "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v')",
        [schema_name],
    ).fetchall()
    for relname, relkind in owned:
        kind = sql.SQL("VIEW" if relkind == "v" else "TABLE")
        con.execute(sql.SQL("ALTER {} {} OWNER TO {}").format(kind, sql.Identifier(relname), w))
    con.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(schema, a))
    con.execute(
        sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
            w, schema, a
        )
    )
    return len(owned)
