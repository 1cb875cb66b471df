"""Starting the real bot (`python -m bot serve`) as a separate process for end-to-end tests.

The bot talks only to stand-ins on loopback: the Slack stand-in (Web API, response_url,
Socket Mode) and the sample CDE API. Its log goes to a file the test can read.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from tests.helpers.environment import settings_variables

if TYPE_CHECKING:
    from bot.demo.api import SampleCdeApi
    from tests.standins.slack import ApiCall, SlackStandIn

BOT_TOKEN = "xoxb-test-bot-token-0123456789"
APP_TOKEN = "xapp-test-app-token-0123456789"
SIGNING_SECRET = "test-signing-secret-0123456789"
CDE_TOKEN = "cde-test-token-0123456789"
SECRETS = (BOT_TOKEN, APP_TOKEN, SIGNING_SECRET, CDE_TOKEN)
# The checkout whose `bot` package the tests import: a child process imports the same one,
# not whichever copy is installed in the environment (another checkout's, say).
SOURCE_ROOT = str(Path(__file__).resolve().parents[2])


def child_environment(env: dict[str, str], source_root: str = SOURCE_ROOT) -> dict[str, str]:
    """`env` for a child `python -m bot ...`, importing the `bot` package under test (the one
    in `source_root`)."""
    path = [source_root, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    return {**env, "PYTHONPATH": os.pathsep.join(path)}


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class BotProcess:
    """`cde-bot serve` in a child process, configured by environment like in production."""

    def __init__(self, env: dict[str, str], log_path: Path, *, source_root: str = SOURCE_ROOT) -> None:
        self.port = free_port()
        # Only `env` configures the bot: no setting leaks in from the shell running the tests
        # (a fixture shared by several tests is made before their environment is reset).
        inherited = {k: v for k, v in os.environ.items() if k not in settings_variables()}
        self.env = child_environment({**inherited, **env, "PORT": str(self.port), "PYTHONUNBUFFERED": "1"},
                                     source_root)
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self.returncode: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, *, wait_ready: bool = True, timeout: float = 30.0) -> None:
        log = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1",
            env=self.env, stdout=log, stderr=log,
            # Beside its log, away from any .env file in the directory the tests run in.
            cwd=self.env.get("BOT_CWD", str(self.log_path.parent)),
        )
        log.close()
        if wait_ready:
            await self.wait_ready(timeout)

    async def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise AssertionError(f"bot exited with {self.process.returncode}:\n{self.log()}")
                try:
                    async with session.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"bot not ready within {timeout}s:\n{self.log()}")

    async def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then wait for a clean exit; returns the exit code."""
        if self.process is None:
            raise RuntimeError("not started")
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
                raise AssertionError(f"bot did not stop within {timeout}s:\n{self.log()}") from None
        self.returncode = await self.process.wait()
        return self.returncode

    async def wait_exit(self, timeout: float = 30.0) -> int:
        """Wait for the bot to exit by itself; its exit code."""
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), timeout)

    def log(self) -> str:
        """Everything the bot wrote to its stdout and stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


@dataclass(frozen=True)
class SharedBot:
    """A bot process the tests of a module share, and the Web API calls it made starting
    up (the stand-in's own record of them is reset before each test).
    """

    process: BotProcess
    start_up_calls: list[ApiCall]

    def start_up_calls_to(self, method: str) -> list[ApiCall]:
        """The start-up calls of one Web API method."""
        return [call for call in self.start_up_calls if call.method == method]


def bot_env(slack: SlackStandIn, cde: SampleCdeApi, *, socket_mode: bool,
            database: Path | None = None) -> dict[str, str]:
    """The settings of a bot that talks to the stand-ins, in one transport or the other."""
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": slack.base_url,
        "CDE_API_URL": cde.url,
        "CDE_API_TOKEN": CDE_TOKEN,
        "LOG_LEVEL": "DEBUG",
    }
    if database is not None:
        env["DATABASE_URL"] = f"sqlite+aiosqlite:///{database}"
    if socket_mode:
        env["SLACK_APP_TOKEN"] = APP_TOKEN
    else:
        env["SLACK_SIGNING_SECRET"] = SIGNING_SECRET
    return env


async def stop_cleanly(bot: BotProcess) -> None:
    """Stop the bot and check it went as it should: exit 0, no secret and no crash logged."""
    code = await bot.stop()
    log = bot.log()
    assert code == 0, f"bot exited with {code}:\n{log}"
    leaked = [secret for secret in SECRETS if secret in log]
    assert not leaked, "a secret appeared in the bot's log"
    # Every traceback in the log must belong to an error the bot reported as unhandled
    # (a test provoked it); any other one is a crash.
    assert log.count("Traceback") == log.count("Unhandled error"), log
