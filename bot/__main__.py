"""The `cde-bot` command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from bot import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cde-bot", description="Slack chat-ops for Productsup's CDE connector runs."
    )
    parser.add_argument("--version", action="version", version=f"cde-bot {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the bot (Socket Mode or HTTP, by settings)")
    serve.add_argument("--host", default="0.0.0.0", help="address for the HTTP port (default: all)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "serve"
    if command == "serve":
        return _serve(getattr(args, "host", "0.0.0.0"))
    return 2


def _serve(host: str) -> int:
    # Imported here so that `--help` and `--version` stay fast and need no settings.
    from bot import logs
    from bot.config import ConfigError, load_settings
    from bot.server import StartupError, serve

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.secrets())
    try:
        asyncio.run(serve(settings, host=host))
    except StartupError as exc:
        print(f"cde-bot cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
