"""The demo and the console in a terminal, run as a person would from a shell.

Scripts piped into the console, and the demo API, are tested in the test process:
tests/console/test_run.py.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

from tests.helpers.bot_process import child_environment

FAILED_RUN = "019e16f3-bfb8-7ed8-8d26-b7d40818d146"


# The demo's pace, quickened: a new run every second (the flaky connector fails on the
# third and the fourth) and a poll every second, the shortest interval a poll may have.
QUICK_DEMO = ("import sys; from bot.__main__ import main; sys.exit(main(['demo', '--pace', '1']))")


# An operator's settings (even broken ones) must neither stop the demo nor leak into it.
OPERATOR_SETTINGS = {
    "CDE_LOOKBACK_HOURS": "abc", "CDE_WEB_URL_TEMPLATE": "https://cde.example/runs/{run_id}",
    "CDE_API_URL": "http://127.0.0.1:9", "SLACK_BOT_TOKEN": "not-a-token",
}


async def test_demo_needs_nothing_ignores_the_environment_and_shows_notices_live() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", QUICK_DEMO,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=child_environment({**os.environ, **OPERATOR_SETTINGS, "PYTHONUNBUFFERED": "1"}),
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
    # Updates of the notice on screen are one line each, not the notice drawn again.
    assert "updated: " in out and "`show " in out
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
                self.answer_cursor_requests(chunk)
        assert marker in self.pending, self.pending
        end = self.pending.index(marker) + len(marker)
        seen, self.pending = self.pending[:end], self.pending[end:]
        return seen

    def answer_cursor_requests(self, chunk: bytes) -> None:
        # Line editing asks where the cursor is (CPR), as terminals answer: say row 1, column 1.
        for _ in range(chunk.count(b"\x1b[6n")):
            os.write(self.fd, b"\x1b[1;1R")

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

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


# The prompt as the line editor draws it (the space after it is a cursor move).
PROMPT = "cde>"


@contextlib.contextmanager
def console_in_a_terminal(tmp_path: Path, *args: str) -> Iterator[tuple[int, Terminal]]:
    """`cde-bot demo` with a pty as its terminal, its history under `tmp_path`; killed at
    the end if it is still running."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the console, with the pty as its terminal
        os.execvpe(sys.executable, [sys.executable, "-m", "bot", "demo", *args],
                   child_environment({**os.environ, "NO_COLOR": "1", "TERM": "xterm",
                                      "XDG_DATA_HOME": str(tmp_path)}))
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 x 24
    try:
        yield pid, Terminal(fd)
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


def test_interactive_console_prompts_and_leaves_on_ctrl_c(tmp_path: Path) -> None:
    """In a terminal: a banner and a prompt, answers, and Ctrl-C leaves at once."""
    with console_in_a_terminal(tmp_path) as (pid, terminal):
        assert "cde-bot console (demo" in terminal.read_until(PROMPT)
        terminal.type("runs limit:1\r")
        assert "Showing 1–1 of" in terminal.read_until("Share in channel")
        terminal.read_until(PROMPT)
        started = time.monotonic()
        os.kill(pid, signal.SIGINT)
        status = terminal.wait_exit(pid)
        assert time.monotonic() - started < 10
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert "CPR" not in terminal.pending  # the terminal's answers were understood


def timed(terminal: Terminal, line: str, answer: str) -> float:
    """Seconds from typing `line` (and Enter) until the prompt is back after `answer`."""
    started = time.monotonic()
    terminal.type(line + "\r")
    terminal.read_until(answer, timeout=90)
    terminal.read_until(PROMPT, timeout=90)
    return time.monotonic() - started


def test_the_prompt_comes_back_as_soon_as_the_answer_is_drawn(tmp_path: Path) -> None:
    """Ten lookups and page turns, then ten more with a subscription posting live notices:
    each prompt is back at once. (It once came back after 60 s: the console waited for the
    demo API's idle keep-alive connections as if they were the command's work.)
    """
    lookups = [("runs state:failed limit:2", "Showing 1–2 of"), ("next", "Showing 3–4 of")] * 5
    with console_in_a_terminal(tmp_path, "--pace", "1") as (pid, terminal):
        terminal.read_until(PROMPT)
        alone = [timed(terminal, line, answer) for line, answer in lookups]
        timed(terminal, "subscribe all", "Subscribe to all failures")
        timed(terminal, "confirm", "subscribed this channel")
        subscribed = [timed(terminal, line, answer) for line, answer in lookups]
        terminal.type("quit\r")
        status = terminal.wait_exit(pid)
    figures = (f"prompt latency in seconds, without a subscription: {' '.join(f'{t:.2f}' for t in alone)}; "
               f"with one: {' '.join(f'{t:.2f}' for t in subscribed)}")
    print(figures)
    # Generous bounds (the machine may be busy); the figures above are the measurement.
    assert max(alone + subscribed) < 5, figures
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_line_editing_history_completion_and_clearing(tmp_path: Path) -> None:
    """Up recalls the last line, Tab completes sub-commands and `key:` filters, Ctrl-L and
    `clear` clear the screen, and the history is kept in the user's data directory.
    """
    history = tmp_path / "cde-bot" / "console_history"
    with console_in_a_terminal(tmp_path) as (pid, terminal):
        terminal.read_until(PROMPT)
        terminal.type("runs limit:1\r")
        terminal.read_until("Showing 1–1 of")
        terminal.read_until(PROMPT)
        terminal.type("\x1b[A\r")  # Up, Enter: the same lookup again
        terminal.read_until("Showing 1–1 of")
        terminal.read_until(PROMPT)
        # Tab once the editor shows what was typed, as a person presses it: a Tab that
        # arrives with the text, while the prompt is still being set up, may find no line.
        terminal.type("subscript")
        terminal.read_until("subscript")
        terminal.type("\t")  # completes to `subscriptions`
        terminal.read_until("ions")
        terminal.type("\r")
        terminal.read_until("follows no failures", timeout=30)
        terminal.read_until(PROMPT)
        terminal.type("runs sta")
        terminal.read_until("sta")
        terminal.type("\t")  # completes to `state:`
        terminal.read_until("te:")
        terminal.type("failed limit:1\r")
        assert "Showing 1–1 of" in terminal.read_until("failed run")
        terminal.read_until(PROMPT)
        terminal.type("\x0c")  # Ctrl-L
        terminal.read_until("\x1b[2J")
        terminal.type("clear\r")
        terminal.read_until("\x1b[2J")
        terminal.read_until(PROMPT)
        terminal.type("quit\r")
        terminal.wait_exit(pid)
    assert "\n+runs limit:1\n" in history.read_text()
    assert "\n+subscriptions\n" in history.read_text()


def test_a_live_message_keeps_the_half_typed_line(tmp_path: Path) -> None:
    """A notice drawn while a line is being typed goes above it; the line stays as typed."""
    with console_in_a_terminal(tmp_path, "--pace", "1") as (pid, terminal):
        terminal.read_until(PROMPT)
        timed(terminal, "subscribe all", "Subscribe to all failures")
        timed(terminal, "confirm", "subscribed this channel")
        terminal.type("runs sit")
        terminal.read_until("Failed: connector", timeout=60)
        assert "runs sit" in terminal.read_until(f"{PROMPT} runs sit", timeout=30)
        terminal.type("e:1002 limit:1\r")
        assert "`site:1002`" in terminal.read_until("Share in channel")
        terminal.type("quit\r")
        terminal.wait_exit(pid)


def test_ctrl_c_typed_at_the_prompt_leaves(tmp_path: Path) -> None:
    """Ctrl-C typed (the line editor reads it as a key, not a signal) leaves too, at once."""
    with console_in_a_terminal(tmp_path) as (pid, terminal):
        terminal.read_until(PROMPT)
        terminal.type("runs li")
        terminal.read_until("runs li")
        started = time.monotonic()
        terminal.type("\x03")
        status = terminal.wait_exit(pid)
        assert time.monotonic() - started < 10
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
