"""The console, the demo and the demo API, run as a person would from a shell."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import os
import pty
import select
import signal
import sys
import time
from pathlib import Path

import httpx

from bot.demo.api import SampleCdeApi
from tests.helpers.bot_process import CDE_TOKEN, free_port

FAILED_RUN = "019e16f3-bfb8-7ed8-8d26-b7d40818d146"


async def run_cli(*args: str, stdin: str, env: dict[str, str] | None = None,
                  timeout: float = 90) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_console_answers_commands_and_button_presses(cde: SampleCdeApi) -> None:
    env = {"CDE_API_URL": cde.url, "CDE_API_TOKEN": CDE_TOKEN}
    script = "/cde runs site:1001 state:failed limit:5\nnext\nrun " + FAILED_RUN + "\nruns site:abc\n"
    code, out, err = await run_cli("console", stdin=script, env=env)
    assert code == 0, err
    assert "Showing 1–5 of 23" in out
    assert "── #console · replaces the answer above ──" in out and "Showing 6–10 of 23" in out
    assert "[1] Next ▶" in out
    assert "RUN FAILED: SITE 2" in out and "Exit code: 1" in out
    assert "`site:abc`: site must be a site id" in out
    # Every request reached the CDE stand-in with the configured token.
    assert {r.authorization for r in cde.requests} == {f"Bearer {CDE_TOKEN}"}
    assert err == ""


async def test_console_json_prints_block_kit(cde: SampleCdeApi) -> None:
    env = {"CDE_API_URL": cde.url, "CDE_API_TOKEN": CDE_TOKEN}
    code, out, _ = await run_cli("console", "--json", "--user", "U0ALICE", "--channel", "ops",
                                 stdin="runs site:1002\nshare\n", env=env)
    assert code == 0
    decoder, messages, rest = json.JSONDecoder(), [], out.strip()
    while rest:
        message, end = decoder.raw_decode(rest)
        messages.append(message)
        rest = rest[end:].strip()
    assert [m["how"] for m in messages] == ["ephemeral", "post"]
    assert messages[0]["blocks"][0]["type"] == "section" and messages[0]["channel"] == "ops"
    assert "shared by <@U0ALICE>" in json.dumps(messages[1])


async def test_console_without_settings_says_what_is_missing(tmp_path: Path) -> None:
    code, _, err = await run_cli("console", stdin="runs\n")
    assert code == 2
    assert "CDE_API_TOKEN" in err and "cde-bot demo" in err


# The demo's pace, quickened: a new run every second (the flaky connector fails on the
# first and the third) and a poll every second, the shortest interval a poll may have.
QUICK_DEMO = ("import sys; from bot.console import run; "
              "run.DEMO_NEW_RUN_SECONDS = 1.0; run.DEMO_POLL_SECONDS = 1.0; "
              "from bot.__main__ import main; sys.exit(main(['demo']))")


async def test_demo_needs_nothing_and_shows_notices_live() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", QUICK_DEMO,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    process.stdin.write(b"runs state:failed limit:2\nsubscribe all\nconfirm\nwait 0.5\n")
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


async def test_demo_api_serves_the_sample_api() -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "demo-api", "--port", str(port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        banner = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert "Sample CDE API" in banner
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            headers = {"Authorization": "Bearer demo-token"}
            page = (await client.get("/runs", params={"state": "failed", "limit": 2},
                                     headers=headers)).json()
            assert len(page["data"]) == 2 and page["metadata"]["total"] > 2
            assert {run["state"] for run in page["data"]} == {"failed"}
            one = await client.get(f"/runs/{FAILED_RUN}", headers=headers)
            assert one.json()["data"]["site-name"] == "Site 2"
            assert (await client.get("/runs")).status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0


async def test_demo_ignores_the_environment() -> None:
    # An operator's settings (even broken ones) must neither stop the demo nor leak into it.
    env = {"CDE_LOOKBACK_HOURS": "abc", "CDE_WEB_URL_TEMPLATE": "https://cde.example/runs/{run_id}",
           "CDE_API_URL": "http://127.0.0.1:9", "SLACK_BOT_TOKEN": "not-a-token"}
    code, out, err = await run_cli("demo", stdin=f"run {FAILED_RUN}\n", env=env)
    assert code == 0, err
    assert "RUN FAILED: SITE 2" in out
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
