"""Starting the console: real settings for the CDE API, or the embedded demo API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bot import logs
from bot.config import load_settings
from bot.console.prompt import read_in_terminal
from bot.console.session import Console
from bot.demo.api import DEMO_TOKEN, SampleCdeApi, keep_producing, reference_runs
from bot.demo.history import DemoHistory
from bot.notices.scheduler import PollScheduler
from bot.redact import for_settings
from bot.server import Bot

# The demo's pace: a new run every DEMO_PACE seconds (`cde-bot demo --pace`), and a poll
# as often, but at most every DEMO_POLL_SECONDS and at least every second.
DEMO_PACE = 10.0
DEMO_POLL_SECONDS = 5.0
MIN_POLL_SECONDS = 1.0

BANNER = """cde-bot console{demo}. Type what you would after /cde in Slack:
  runs state:failed · run <id> · subscribe all (then `confirm`) · subscriptions · help
Buttons: `press N` presses [N]; a menu's choice by its place: `press N 2`. Shortcuts: `next`,
`prev`, `share`, `ack`, `mute 4h` (hours), `unmute`, `recent`, `confirm`.
`show N` draws message N in full again (updates are one line); `wait 10` lets the poller work
for 10 s; `clear` or Ctrl-L clears the screen; Tab completes; `quit` or Ctrl-D leaves.
"""


def demo_poll_seconds(pace: float) -> float:
    """How often the demo polls at `pace`: as often as runs come, within bounds."""
    return max(MIN_POLL_SECONDS, min(DEMO_POLL_SECONDS, pace))


@dataclass(frozen=True)
class ConsoleOptions:
    """How the console runs: on the demo API or the configured one, printing text or JSON,
    as which Slack user in which channel."""

    demo: bool
    json_output: bool
    user: str
    channel: str
    pace: float = DEMO_PACE  # seconds between the demo's new runs


async def run_console(options: ConsoleOptions, *, stdin: TextIO | None = None,
                      stdout: TextIO | None = None) -> int:
    """Run the console until the input ends or `quit`; the exit status. A terminal gets
    line editing; lines piped in are read as they come.
    """
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    demo = options.demo
    # Line editing needs a terminal at both ends; otherwise lines are read as a script.
    interactive = stdin.isatty() and stdout.isatty()
    color = interactive and stdout.isatty() and "NO_COLOR" not in os.environ
    console = Console(stdout, channel=options.channel, user=options.user,
                      json_output=options.json_output, color=color)
    await console.slack.start()
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(console.slack.stop)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cde-bot-console-")))
        overrides: dict[str, object] = {
            # Slack is the console's own local stand-in; nothing reaches a workspace.
            "slack_bot_token": "xoxb-console-local",
            "slack_app_token": None,
            "slack_signing_secret": "console-local",
            "slack_api_url": console.slack.api_url,
            "slack_admin_channel": None,
            # The console keeps its own state, apart from any production database.
            "database_url": f"sqlite+aiosqlite:///{workdir / 'console.db'}",
        }
        if demo:
            history = DemoHistory()
            api = SampleCdeApi(reference_runs() + history.past(), token=DEMO_TOKEN)
            await api.start()
            stack.push_async_callback(api.stop)
            producer = asyncio.create_task(keep_producing(api, history, options.pace))
            stack.callback(producer.cancel)
            overrides |= {"cde_api_url": api.url, "cde_api_token": DEMO_TOKEN,
                          "cde_poll_interval": demo_poll_seconds(options.pace)}
        # The demo takes nothing from the environment: it must run anywhere, and never
        # mix an operator's production settings (links, say) into sample data.
        settings = load_settings(environment=not demo, **overrides)
        console.screen.redactor = for_settings(settings)
        logs.redact_handlers(settings.secrets())
        bot = Bot.build(settings)
        console.bot = bot
        await bot.store.open()
        stack.push_async_callback(bot.aclose)
        scheduler = PollScheduler(bot.poller.poll_once, settings.cde_poll_interval)
        scheduler.start(first_in=1.0)
        stack.push_async_callback(scheduler.stop)
        if interactive:
            pace = f", a new run every {options.pace:g} s" if demo else ""
            console.say(BANNER.format(demo=f" (demo: sample CDE API at {settings.cde_api_url}{pace})"
                                      if demo else ""))
            await read_in_terminal(console)
        else:
            await _read_lines(console, stdin)
    return 0


async def _read_lines(console: Console, stdin: TextIO) -> None:
    """Lines piped in (a script, a transcript), acted on one after the other."""
    lines = _lines_of(stdin)
    while True:
        line = await lines.get()
        if line is None:  # end of input
            return
        if line.strip():
            # A transcript of a script reads like the session it stands for.
            console.note(f"cde> {line.rstrip()}")
        if not await console.handle(line):
            return


def _lines_of(stdin: TextIO) -> asyncio.Queue[str | None]:
    """Lines of `stdin`, read by a daemon thread: a blocked read must never keep the
    process alive after Ctrl-C or the end of the session.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, name="console-stdin", daemon=True).start()
    return queue
