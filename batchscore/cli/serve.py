"""`batchscore serve`: the read API over the published scores (see docs/serving.md)."""

from __future__ import annotations

import argparse

from batchscore.settings import ConfigError, load_serve

NO_TOKENS = (
    "no tokens file: set BATCHSCORE_SERVE_TOKENS_FILE to a JSON file "
    '{"<sha256 hex of a token>": ["<pipeline>" or "*", ...]}, '
    "or pass --insecure-no-auth to serve every pipeline to anyone who can reach the port"
)


def add_commands(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="serve the published scores over HTTP (read-only)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8090)
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.add_argument(
        "--insecure-no-auth", action="store_true", help="serve without bearer tokens (local use only)"
    )
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from batchscore.serving.auth import BadTokensFile, TokenStore

    settings = load_serve()
    if settings.tokens_file is None and not args.insecure_no_auth:
        raise ConfigError(NO_TOKENS)
    if settings.tokens_file is not None:
        try:
            TokenStore(settings.tokens_file)
        except BadTokensFile as exc:
            raise ConfigError(str(exc)) from None
    factory = "app_from_env" if settings.tokens_file is not None else "insecure_app_from_env"
    print(f"serving {settings.warehouse_url.split('@')[-1]} on http://{args.host}:{args.port}")
    uvicorn.run(
        f"batchscore.serving.app:{factory}",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
    )
    return 0
