"""`bot.server.serve` in the test process: the start-up, transport and shutdown of
`cde-bot serve`, without the second or so a new Python process spends starting.

`serve` runs on an event loop of its own, in a thread. Its own loop, because shutdown
drains every other task of the loop it runs on (the test's and the stand-ins' would be
among them); a thread, because there `serve` cannot install signal handlers (only the main
thread may), so the test run's own handling of Ctrl-C stays as it is. Signals themselves
are for the tests of the real process. The settings come from the environment, as for
`python -m bot serve`, and the log is formatted by `logs.configure` as there, into a buffer.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Mapping

import aiohttp
import pytest

from bot import logs
from bot.config import Settings, load_settings
from bot.server import StartupError, serve
from tests.helpers.bot_process import SECRETS, free_port
from tests.helpers.waiting import until


def settings_from(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings `cde-bot serve` reads from `env` (on a free port unless `env` has one)."""
    for name, value in {"PORT": str(free_port()), **env}.items():
        monkeypatch.setenv(name, value)
    return load_settings()


class ServedBot:
    """`serve(settings)` on 127.0.0.1, stopped by `stop()` as SIGTERM would stop it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = settings.port
        self._log = io.StringIO()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._done: asyncio.Future[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """Everything the bot logged so far."""
        logs.flush()
        return self._log.getvalue()

    def start(self) -> None:
        """Configure logging as `cde-bot serve` does, and start serving in a thread."""
        logs.configure(self.settings.log_level, self.settings.secrets(), self.settings.log_format,
                       stream=self._log)
        caller = asyncio.get_running_loop()
        done: asyncio.Future[None] = caller.create_future()
        self._done = done

        def finish(error: BaseException | None) -> None:
            if done.done():
                return
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

        def run() -> None:
            error: BaseException | None = None
            try:
                asyncio.run(self._serve())
            except BaseException as exc:  # noqa: BLE001 - handed to the test's loop, which raises it
                error = exc
            caller.call_soon_threadsafe(finish, error)

        # A daemon: a test that fails half-way must not keep the test run from exiting.
        threading.Thread(target=run, name="served-bot", daemon=True).start()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        await serve(self.settings, stop=self._stop, host="127.0.0.1")

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Until `/healthz` answers 200; fails at once if `serve` ended (a failed start)."""
        async with aiohttp.ClientSession() as session:
            async def healthy() -> bool:
                assert self._done is not None
                if self._done.done():
                    self._done.result()  # raises what stopped it
                    raise AssertionError(f"the bot stopped during start-up:\n{self.log()}")
                try:
                    async with session.get(f"{self.url}/healthz") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            await until(healthy, "the bot to be ready", timeout)

    async def stop(self, timeout: float = 30.0) -> None:
        """Ask `serve` to shut down, as its signal handlers would, and wait until it has."""
        assert self._done is not None
        if not self._done.done():
            await until(lambda: self._stop is not None, "serve to begin")
            assert self._loop is not None and self._stop is not None
            self._loop.call_soon_threadsafe(self._stop.set)
        await asyncio.wait_for(asyncio.shield(self._done), timeout)

    async def failed_start(self, timeout: float = 30.0) -> StartupError:
        """Start, expecting `serve` to give up: the `StartupError` it raised. Its log must
        hold no secret and no traceback, like the CLI's output of a failed start.
        """
        self.start()
        assert self._done is not None
        with pytest.raises(StartupError) as failure:
            await asyncio.wait_for(asyncio.shield(self._done), timeout)
        log = self.log() + str(failure.value)
        assert not [secret for secret in SECRETS if secret in log], "a secret appeared in the output"
        assert "Traceback" not in log, log
        return failure.value


async def stop_cleanly(bot: ServedBot) -> None:
    """Stop the bot and check it went as it should: no error, no secret, no crash logged."""
    await bot.stop()
    log = bot.log()
    leaked = [secret for secret in SECRETS if secret in log]
    assert not leaked, "a secret appeared in the bot's log"
    # Every traceback in the log must belong to an error the bot reported as unhandled
    # (a test provoked it); any other one is a crash.
    assert log.count("Traceback") == log.count("Unhandled error"), log
