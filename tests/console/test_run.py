"""The console run from a script in the test process, as `cde-bot console` runs one piped
in, and the demo API served on its own.

The terminal (prompt, Ctrl-C) and the demo are tested with real processes in
tests/e2e/test_console.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from bot import logs
from bot.__main__ import main
from bot.console.run import ConsoleOptions, run_console
from bot.demo.api import SampleCdeApi
from bot.demo.serve import serve_demo_api
from tests.helpers.bot_process import CDE_TOKEN, free_port
from tests.helpers.sample import sample_runs
from tests.helpers.waiting import until

FAILED_RUN = "019e16f3-bfb8-7ed8-8d26-b7d40818d146"


@pytest.fixture
async def cde() -> AsyncIterator[SampleCdeApi]:
    async with SampleCdeApi(sample_runs(), token=CDE_TOKEN) as api:
        yield api


async def run_script(script: str, *, json_output: bool = False, user: str = "you",
                     channel: str = "console", demo: bool = False, pace: float = 1.0) -> tuple[int, str]:
    """The console's exit status and output for `script` piped in (not a terminal).

    On an event loop of its own, as in its own process; `demo` serves the sample API on
    that loop, a new run every `pace` seconds.
    """
    logs.configure("WARNING")  # as `cde-bot console` does: only problems are logged
    out = io.StringIO()
    options = ConsoleOptions(demo=demo, json_output=json_output, user=user, channel=channel, pace=pace)
    session = run_console(options, stdin=io.StringIO(script), stdout=out)
    code = await asyncio.wait_for(in_a_thread(lambda: asyncio.run(session)), 60)
    return code, out.getvalue()


def in_a_thread(work: Callable[[], int]) -> asyncio.Future[int]:
    """`work()` in a daemon thread (one left hanging by a failed test cannot keep the test
    run from ending); its result, on the calling loop."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[int] = loop.create_future()

    def settle(value: int | None, error: BaseException | None) -> None:
        if result.done():
            return
        if error is None:
            assert value is not None
            result.set_result(value)
        else:
            result.set_exception(error)

    def run() -> None:
        try:
            value = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's loop, which raises it
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, value, None)

    threading.Thread(target=run, name="console", daemon=True).start()
    return result


async def test_console_answers_commands_and_button_presses(
        cde: SampleCdeApi, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CDE_API_URL", cde.url)
    monkeypatch.setenv("CDE_API_TOKEN", CDE_TOKEN)
    script = "/cde runs site:1001 state:failed limit:5\nnext\nrun " + FAILED_RUN + "\nruns site:abc\n"
    code, out = await run_script(script)
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Showing 1–5 of 23" in out
    assert "── #console · message 1 · replaces the answer above ──" in out and "Showing 6–10 of 23" in out
    assert "[1] Next ▶" in out
    assert "FAILED RUN ON SITE 2" in out and "Exit code: 1" in out
    assert "`site:abc`: site must be a site id" in out
    # Every request reached the CDE stand-in with the configured token.
    assert {r.authorization for r in cde.requests} == {f"Bearer {CDE_TOKEN}"}
    assert err == ""


async def test_console_json_prints_block_kit(cde: SampleCdeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDE_API_URL", cde.url)
    monkeypatch.setenv("CDE_API_TOKEN", CDE_TOKEN)
    code, out = await run_script("runs site:1002\nshare\n", json_output=True, user="U0ALICE", channel="ops")
    assert code == 0
    decoder, messages, rest = json.JSONDecoder(), [], out.strip()
    while rest:
        message, end = decoder.raw_decode(rest)
        messages.append(message)
        rest = rest[end:].strip()
    assert [m["how"] for m in messages] == ["ephemeral", "post"]
    assert messages[0]["blocks"][0]["type"] == "section" and messages[0]["channel"] == "ops"
    assert "shared by <@U0ALICE>" in json.dumps(messages[1])


async def test_the_demo_answers_lookups_and_presses_at_once() -> None:
    """The README's steps, piped into the demo: no pause after a lookup or a press. (The
    console once waited 60 s after each: the demo API's idle keep-alive connections, on the
    same loop, counted as the command's work.)
    """
    started = time.monotonic()
    code, out = await run_script("runs state:failed limit:2\nnext\nprev\nrun " + FAILED_RUN + "\n",
                                 demo=True, pace=30)
    took = time.monotonic() - started
    assert code == 0
    assert "Showing 1–2 of" in out and "Showing 3–4 of" in out and "FAILED RUN ON SITE 2" in out
    # Four commands, each a second or two at most on a busy machine; 60 s each before.
    assert took < 20, f"{took:.1f} s"


async def test_a_notice_updated_on_every_failure_is_drawn_once_then_one_line_each() -> None:
    # A run a second: the flaky connector fails at 3 s and 4 s and recovers at 5 s.
    script = "subscribe all\nconfirm\nwait 9\n"
    code, out = await run_script(script, demo=True, pace=1)
    assert code == 0
    # The flaky connector's notice: drawn in full once, its updates one line each.
    [number] = re.findall(r"── #console · message (\d+) ──\n🔴 Failed: connector "
                          r"`019e16f3-bf9c-7485-b60b-ff3407921934` v1\.0\.1 on Site 2", out)
    assert out.count(f"── #console · message {number} ──") == 1
    updates = re.findall(rf"── #console · message {number} updated: (.*) · `show {number}` ──\n", out)
    assert "Failed 2 times" in out
    assert any("Recovered" in update for update in updates), out
    assert f"reply in the thread of message {number}" in out


def test_console_without_settings_says_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    # The settings fail before the console reads a line of its input.
    assert main(["console"]) == 2
    err = capsys.readouterr().err
    assert "CDE_API_TOKEN" in err and "cde-bot demo" in err


@contextlib.contextmanager
def signal_handlers_restored() -> Iterator[None]:
    """Take the event loop's handlers of SIGTERM and SIGINT away again, and give back the
    ones the test run had."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        loop = asyncio.get_running_loop()
        for sig, handler in saved.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, handler)


async def test_demo_api_serves_the_sample_api(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    with signal_handlers_restored():
        served = asyncio.create_task(serve_demo_api("127.0.0.1", port))
        try:
            banner = await until(lambda: capsys.readouterr().out, "the banner")
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
            # SIGTERM reaches the handler the demo API installed (not the default, which
            # would end the test run): it stops serving and returns.
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
            signal.raise_signal(signal.SIGTERM)
            await asyncio.wait_for(served, 15)
        finally:
            served.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await served
