"""`batchscore sql` and `batchscore warehouse migrate|init-roles`."""

from __future__ import annotations

import argparse

from batchscore.settings import ConfigError, load_platform


def add_commands(sub: argparse._SubParsersAction) -> None:
    sql = sub.add_parser("sql", help="query the DuckDB warehouse read-only")
    sql.add_argument("query")
    sql.set_defaults(func=cmd_sql)

    warehouse = sub.add_parser("warehouse", help="the warehouse's schema and roles").add_subparsers(
        dest="warehouse_command", required=True
    )
    migrate = warehouse.add_parser("migrate", help="apply pending schema migrations")
    migrate.set_defaults(func=cmd_warehouse_migrate)
    roles = warehouse.add_parser(
        "init-roles", help="PostgreSQL: create a writer role (publishes) and an analyst role (SELECT only)"
    )
    roles.add_argument("--writer", default="batchscore_writer", help="writer role name")
    roles.add_argument("--analyst", default="batchscore_analyst", help="read-only analyst role name")
    roles.set_defaults(func=cmd_warehouse_init_roles)


def cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

    platform = load_platform()
    if not platform.warehouse_url.startswith("duckdb://"):
        raise ConfigError("`batchscore sql` queries the embedded DuckDB warehouse only")
    with duckdb.connect(platform.warehouse_url.removeprefix("duckdb://"), read_only=True) as con:
        print(con.sql(args.query))
    return 0


def cmd_warehouse_migrate(args: argparse.Namespace) -> int:
    from batchscore.storage.warehouse import open_warehouse

    platform = load_platform()
    applied = open_warehouse(platform.warehouse_url).migrate()
    print(f"applied migrations {applied}" if applied else "schema is up to date")
    return 0


def cmd_warehouse_init_roles(args: argparse.Namespace) -> int:
    from batchscore.storage.warehouse import InvalidIdentifier, open_warehouse
    from batchscore.storage.warehouse.postgres import PostgresWarehouse

    platform = load_platform()
    warehouse = open_warehouse(platform.warehouse_url)
    if not isinstance(warehouse, PostgresWarehouse):
        raise ConfigError("`batchscore warehouse init-roles` needs a postgresql:// warehouse URL")
    try:
        roles = warehouse.init_roles(args.writer, args.analyst)
    except InvalidIdentifier as exc:
        raise ConfigError(str(exc)) from None
    print(
        f"writer role {roles['writer']} can publish, analyst role {roles['analyst']} can only read "
        f"schema {roles['schema']} ({roles['objects_handed_over']} existing tables and views handed to the writer)"
    )
    return 0
