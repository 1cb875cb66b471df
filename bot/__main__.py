"""The `cde-bot` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from bot import __version__
from bot.ops.exits import EXIT_FAILED, EXIT_OK, EXIT_SETTINGS

HELP_WIDTH = 79


class _Parser(argparse.ArgumentParser):
    """A sub-command's parser whose epilog can be made when its help is shown
    (`epilog_from`): serve's lists every setting, from `bot.config`, and so imports pydantic,
    which parsing a command line need not do (`serve` imports it with its other modules, see
    `_long_lived`).
    """

    def __init__(self, *args: Any, epilog_from: Callable[[], str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._epilog_from = epilog_from

    def format_help(self) -> str:
        if self._epilog_from is not None:
            self.epilog = self._epilog_from()
        return super().format_help()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cde-bot", description="Slack chat-ops for Productsup's CDE connector runs."
    )
    parser.add_argument("--version", action="version", version=f"cde-bot {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    serve = commands.add_parser(
        "serve", help="run the bot (Socket Mode or HTTP, by settings)",
        description=textwrap.fill(
            "Run the bot: Socket Mode when SLACK_APP_TOKEN is set, else HTTP (Slack POSTs to "
            "/slack/events). /healthz, /readyz and /metrics are served on PORT in both modes. "
            "Settings come from the environment or a .env file in the working directory.", HELP_WIDTH),
        epilog_from=settings_help, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", default="0.0.0.0", help="address for the HTTP port (default: all)")
    commands.add_parser(
        "check", help="check settings and every connection, then exit",
        description="Check the settings, the Slack tokens, the CDE API and the store, one line "
        "each with what to do when one fails. Nothing is posted and no file is created. Exit "
        f"status: {EXIT_OK} all passed, {EXIT_FAILED} a check failed, {EXIT_SETTINGS} invalid settings.",
    )
    for name, text, about in (
        ("console", "talk to the bot in this terminal instead of Slack",
         "Talk to the bot in this terminal instead of Slack: type what you would type after "
         "/cde. Needs the CDE settings (CDE_API_URL, CDE_API_TOKEN), not Slack's."),
        ("demo", "the console with a sample CDE API: no Slack, no account, no settings",
         "The console against an embedded sample CDE API: no Slack, no account, no settings."),
    ):
        console = commands.add_parser(name, help=text, description=about)
        if name == "console":
            console.add_argument("--demo", action="store_true",
                                 help="use the embedded sample CDE API instead of CDE_API_URL")
        console.add_argument("--json", action="store_true", help="print Block Kit JSON instead of text")
        console.add_argument("--user", default="you", help="act as this Slack user (default: you)")
        console.add_argument("--channel", default="console", help="act in this channel (default: console)")
        console.add_argument("--pace", type=_pace, default=None, metavar="SECONDS",
                             help="the demo's pace: seconds between new sample runs (default: 10)")
    demo_api = commands.add_parser(
        "demo-api", help="serve the sample CDE API on its own",
        description="Serve the demo's sample CDE API on its own, to try a real Slack workspace "
        "against sample data; it prints the CDE_API_URL and CDE_API_TOKEN to use.",
    )
    demo_api.add_argument("--port", type=_port, default=8080, help="port (default: 8080)")
    demo_api.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    return parser


def _pace(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0.1 <= seconds <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a pace (seconds between runs, 0.1 to 3600)")
    return seconds


def settings_help() -> str:
    """Every setting, as `serve --help` lists it: the variable, its default, what it expects."""
    from bot.config import settings_table

    rows = [textwrap.fill(text, HELP_WIDTH, initial_indent=f"  {name:<25} ",
                          subsequent_indent=" " * 28) for name, text in settings_table()]
    return "settings (environment variables or .env):\n" + "\n".join(rows)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command
    if command is None:
        # Starting the bot takes a word of its own: a bare `cde-bot` only says what it can do.
        parser.print_help()
        return EXIT_OK
    if command == "serve":
        return _serve(getattr(args, "host", "0.0.0.0"))
    if command == "check":
        from bot.ops.check import main as check

        return check()
    if command in ("console", "demo"):
        return _console(args, demo=command == "demo" or args.demo)
    if command == "demo-api":
        return _demo_api(args.host, args.port)
    return EXIT_SETTINGS


@contextlib.contextmanager
def _long_lived() -> Iterator[None]:
    """No cyclic garbage collection while the modules of `serve` are imported, and what
    they made frozen afterwards (`gc.freeze`: later collections leave it out).

    The imports make some 100 000 objects (classes, functions, SQLAlchemy's and pydantic's
    tables), nearly all of which live as long as the process. The collector would scan them
    again and again while they are made, some 100 ms of a start-up of about a second, and
    find some 1 500 objects of garbage, which freezing keeps: a few hundred KiB at most.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _serve(host: str) -> int:
    # Imported here so that `--help` and `--version` stay fast and need no settings.
    with _long_lived():
        from bot import logs
        from bot.config import ConfigError, load_settings
        from bot.server import StartupError, serve

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"{exc}\n(To try cde-bot without Slack or settings: `cde-bot demo`.)", file=sys.stderr)
        return EXIT_SETTINGS
    logs.configure(settings.log_level, settings.secrets(), settings.log_format)
    try:
        asyncio.run(serve(settings, host=host))
    except StartupError as exc:
        if settings.log_format == "json":
            # A log collector reads JSON lines only: the reason must be one of them.
            logging.getLogger("bot").critical("cde-bot cannot start: %s", exc)
        else:
            logs.flush()  # what start-up logged comes before the reason
            print(f"cde-bot cannot start: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        pass
    finally:
        # Every line written before `main` returns, not only at the interpreter's exit.
        logs.flush()
    return EXIT_OK


def _console(args: argparse.Namespace, *, demo: bool) -> int:
    from bot import logs
    from bot.config import ConfigError
    from bot.console.run import ConsoleOptions, run_console
    from bot.store.base import StoreError

    # The console's own output is the conversation; only problems are logged.
    logs.configure("WARNING")
    try:
        options = ConsoleOptions(demo=demo, json_output=args.json, user=args.user, channel=args.channel,
                                 **({"pace": args.pace} if args.pace is not None else {}))
        return asyncio.run(run_console(options))
    except ConfigError as exc:
        print(f"{exc}\n(Or try `cde-bot demo`, which needs no settings.)", file=sys.stderr)
        return EXIT_SETTINGS
    except StoreError as exc:
        print(f"cde-bot console cannot start: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_OK
    except BrokenPipeError:
        # The reader went away (`cde-bot demo | head`): stop quietly, and keep Python from
        # complaining while it flushes stdout on exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _demo_api(host: str, port: int) -> int:
    from bot.demo.serve import serve_demo_api

    try:
        asyncio.run(serve_demo_api(host, port))
    except OSError as exc:
        print(f"cde-bot demo-api cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        pass
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
