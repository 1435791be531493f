"""The `batchscore` command: seed a lake, train a model, run a pipeline through Airflow.

One module per command group (`lake`, `train`, `run`, `warehouse`, `models`, `pipelines`,
`serve`), each adding its subcommands with `add_commands`. The CLI is the top layer: it may import
every package of batchscore and `jobs`; nothing imports it.
"""

from __future__ import annotations

import argparse
import sys

from batchscore.cli import lake, models, pipelines, run, serve, train, warehouse
from batchscore.cli.output import configure_logging
from batchscore.errors import BadInput
from batchscore.settings import ConfigError

COMMAND_GROUPS = (lake, train, run, warehouse, models, pipelines, serve)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="batchscore", description=__doc__.splitlines()[0])
    root.add_argument("-v", "--verbose", action="store_true", help="INFO logs on stderr")
    sub = root.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.add_commands(sub)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
