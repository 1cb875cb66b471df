"""The demo and the console in a terminal, run as a person would from a shell.

Scripts piped into the console, and the demo API, are tested in the test process:
tests/console/test_run.py.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import pty
import select
import signal
import sys
import time

FAILED_RUN = "019e16f3-bfb8-7ed8-8d26-b7d40818d146"


# The demo's pace, quickened: a new run every second (the flaky connector fails on the
# first and the third) and a poll every second, the shortest interval a poll may have.
QUICK_DEMO = ("import sys; from bot.console import run; "
              "run.DEMO_NEW_RUN_SECONDS = 1.0; run.DEMO_POLL_SECONDS = 1.0; "
              "from bot.__main__ import main; sys.exit(main(['demo']))")


# An operator's settings (even broken ones) must neither stop the demo nor leak into it.
OPERATOR_SETTINGS = {
    "CDE_LOOKBACK_HOURS": "abc", "CDE_WEB_URL_TEMPLATE": "https://cde.example/runs/{run_id}",
    "CDE_API_URL": "http://127.0.0.1:9", "SLACK_BOT_TOKEN": "not-a-token",
}


async def test_demo_needs_nothing_ignores_the_environment_and_shows_notices_live() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", QUICK_DEMO,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **OPERATOR_SETTINGS, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    process.stdin.write(b"runs state:failed limit:2\nsubscribe all\nconfirm\nwait 0.5\n")
    process.stdin.write(f"run {FAILED_RUN}\n".encode())
    out, deadline = "", time.monotonic() + 60
    decoder = codecs.getincrementaldecoder("utf-8")()  # a read may end inside a character
    live = ("🔴 Failed: connector", "Failed again — 2nd time")
    try:
        # The poller works while the console waits for the next line: read until both
        # notices are out.
        while not all(marker in out for marker in live) and time.monotonic() < deadline:
            try:
                chunk = await asyncio.wait_for(process.stdout.read(65536), 1)
            except TimeoutError:
                continue
            if not chunk:  # the demo ended: what it said is checked below
                break
            out += decoder.decode(chunk)
        process.stdin.write(b"quit\n")
        process.stdin.close()
        rest, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    out += decoder.decode(rest, final=True)
    assert process.returncode == 0, err.decode()
    assert "Showing 1–2 of" in out
    assert "subscribed this channel to every failed run" in out
    assert "🔴 Failed: connector" in out  # a notice from the poller, live
    assert "Failed again — 2nd time" in out  # the demo's flaky connector, in the thread
    assert "[1] Next ▶" in out
    assert "FAILED RUN ON SITE 2" in out
    assert "cde.example" not in out


class Terminal:
    """The reading end of a pty. Output is kept until a marker consumes it: what arrives
    together with one marker (the prompt right after an answer) counts for the next.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pending = ""
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def read_until(self, marker: str, timeout: float = 60) -> str:
        """Everything up to and including the next `marker`, waiting for it if need be."""
        deadline = time.monotonic() + timeout
        while marker not in self.pending and time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # the child closed the terminal
                    break
                self.pending += self.decoder.decode(chunk)
        assert marker in self.pending, self.pending
        end = self.pending.index(marker) + len(marker)
        seen, self.pending = self.pending[:end], self.pending[end:]
        return seen

    def wait_exit(self, pid: int, timeout: float = 60) -> int:
        """The child's wait status, reading its last output meanwhile so that it never
        blocks on a full terminal while it exits.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                with contextlib.suppress(OSError):
                    self.pending += self.decoder.decode(os.read(self.fd, 65536))
        raise AssertionError(f"the console did not exit within {timeout} s:\n{self.pending}")


def test_interactive_console_prompts_and_leaves_on_ctrl_c() -> None:
    """In a terminal: a banner and a prompt, answers, and Ctrl-C leaves at once."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the console, with the pty as its terminal
        os.execvpe(sys.executable, [sys.executable, "-m", "bot", "demo"],
                   {**os.environ, "NO_COLOR": "1"})

    terminal = Terminal(fd)
    try:
        assert "cde-bot console (demo" in terminal.read_until("cde> ")
        os.write(fd, b"runs limit:1\n")
        assert "Showing 1–1 of" in terminal.read_until("Share in channel")
        terminal.read_until("cde> ")
        started = time.monotonic()
        os.kill(pid, signal.SIGINT)
        status = terminal.wait_exit(pid)
        assert time.monotonic() - started < 10
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
