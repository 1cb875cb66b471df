"""The console's screen bookkeeping: only what is on screen now can be pressed."""

from __future__ import annotations

import asyncio
import io
import json
import time
from types import SimpleNamespace

import httpx
from slack_bolt.response import BoltResponse

from bot.console.local_slack import Posted
from bot.console.session import Console
from bot.console.terminal import mrkdwn
from bot.demo.api import SampleCdeApi


def notice(ts: str, *, acknowledged: bool = False) -> Posted:
    buttons = [] if acknowledged else [
        {"type": "button", "action_id": "incident_ack", "text": {"type": "plain_text", "text": "Acknowledge"},
         "value": "ack"}]
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Failed:* connector"}},
              {"type": "actions", "elements": [
                  *buttons,
                  {"type": "button", "action_id": "incident_recent",
                   "text": {"type": "plain_text", "text": "Recent runs"}, "value": "runs site:1"}]}]
    return Posted("ops", ts, {"text": "Failed", "blocks": blocks}, "post" if not acknowledged else "update")


MUTE_MENU = {"type": "static_select", "action_id": "incident_mute",
             "placeholder": {"type": "plain_text", "text": "Unmute…"},
             "options": [{"text": {"type": "plain_text", "text": text}, "value": value}
                         for text, value in (("Mute for 1 hour", "1"), ("Mute for 4 hours", "4"),
                                             ("Mute for 24 hours", "24"), ("Unmute", "0"))]}


def muted_notice(ts: str, failures: int) -> Posted:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Failed:* connector"}},
              {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*Run*\n`run-{failures}`"},
                                             {"type": "mrkdwn", "text": "*Exit code*\n1"}]},
              {"type": "context", "elements": [{"type": "mrkdwn", "text":
                                                f"Failed {failures} times · Muted until 14:00"}]},
              {"type": "actions", "elements": [MUTE_MENU]}]
    return Posted("ops", ts, {"text": "Failed", "blocks": blocks}, "post" if failures == 1 else "update")


def test_a_redrawn_message_takes_its_old_buttons_away_and_keeps_the_others_numbers() -> None:
    console = Console(io.StringIO(), channel="ops")
    console.show(notice("1.0"))
    labels = {n: c.label for n, (c, _) in console.screen.controls.items()}
    assert labels == {1: "Acknowledge", 2: "Recent runs"}
    console.show(notice("1.0", acknowledged=True))
    # Only the redrawn message's buttons remain: the old Acknowledge cannot be pressed, and
    # Recent runs is still [2].
    assert {n: c.label for n, (c, _) in console.screen.controls.items()} == {2: "Recent runs"}
    assert list(console.screen.messages) == [1]


def test_an_update_of_a_message_on_screen_is_one_line_and_show_draws_it_in_full() -> None:
    out = io.StringIO()
    console = Console(out, channel="ops")
    console.show(muted_notice("1.0", 1))
    first = out.getvalue()
    assert "── #ops · message 1 ──" in first and "[1] Unmute…" in first
    for failures in range(2, 12):
        console.show(muted_notice("1.0", failures))
    updates = out.getvalue()[len(first):].splitlines()
    # Ten failures on a muted notice: ten lines, each saying what changed.
    assert len(updates) == 10
    assert updates[-1] == ("── #ops · message 1 updated: Failed 11 times · Muted until 14:00; "
                           "new Run · `show 1` ──")


async def test_show_draws_a_message_in_full_as_it_is_now() -> None:
    out = io.StringIO()
    console = Console(out, channel="ops")
    console.show(muted_notice("1.0", 1))
    console.show(muted_notice("1.0", 5))
    await console.handle("show 1")
    shown = out.getvalue().split("as it is now ──\n", 1)[1]
    assert "Failed 5 times" in shown and "Run: `run-5`" in shown and "[1] Unmute…" in shown
    await console.handle("show 7")
    assert "`show N` draws message N" in out.getvalue() and "messages 1–1 are above" in out.getvalue()


async def test_press_alone_or_a_number_not_on_screen_says_how_to_press() -> None:
    out = io.StringIO()
    console = Console(out, channel="ops")
    await console.handle("press")
    assert "No buttons on screen yet" in out.getvalue()
    console.show(notice("1.0"))
    await console.handle("press")
    await console.handle("press 9")
    said = out.getvalue().splitlines()
    assert said[-2] == ("`press N` presses button [N]; `press N K` picks choice K of menu [N]. "
                        "Buttons on screen: [1]–[2].")
    assert said[-1] == "No button [9] on screen. Buttons on screen: [1]–[2]."
    console.show(notice("1.0", acknowledged=True))
    await console.handle("press 1")
    assert "Button [1] is gone: message 1 changed since (`show 1`" in out.getvalue()


async def test_a_menu_number_means_a_place_only_and_mute_takes_hours() -> None:
    from bot.console.session import _option

    out = io.StringIO()
    console = Console(out, channel="ops")
    console.show(muted_notice("1.0", 1))
    assert ("[1] Unmute… (press 1 <1-4>: 1 = Mute for 1 hour, 2 = Mute for 4 hours, "
            "3 = Mute for 24 hours, 4 = Unmute)") in out.getvalue()
    [(menu, _)] = console.screen.controls.values()
    # `press 1 4` is the fourth choice, Unmute; never "4 hours".
    assert _option(menu, "4") == ("Unmute", "0")
    assert _option(menu, "24") is None and _option(menu, None) is None
    assert console._shortcut_choice("mute", "4h", menu) == "2"
    assert console._shortcut_choice("mute", "4 hours", menu) == "2"
    assert console._shortcut_choice("unmute", "", menu) == "4"
    assert console._shortcut_choice("mute", "", menu) is None  # the menu is explained
    # A bare number could be a place or hours: the console asks which.
    assert console._shortcut_choice("mute", "4", menu) == ""
    assert "say `mute 4h` (or `mute 4 hours`) for four hours" in out.getvalue()
    await console.handle("press 1 24")
    assert out.getvalue().splitlines()[-1].startswith("[1] Unmute… is a menu: `press 1 <1-4>`: 1 = ")


def test_json_output_is_one_object_per_line_and_notes_go_to_stderr(capsys) -> None:
    out = io.StringIO()
    console = Console(out, json_output=True)
    console.show(notice("1.0"))
    console.note("No button [9] on screen")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["how"] == "post"
    assert "No button [9]" in capsys.readouterr().err


def test_mrkdwn_for_a_terminal() -> None:
    text = ("<!date^1761739756^{date_short_pretty} {time}|2025-10-29 12:09 UTC> by <@U1> "
            "<https://x.example/runs/1|Open> &lt;!channel&gt; :red_circle: *bold*")
    shown = mrkdwn(text)
    assert "2025-10-29" in shown and "@U1" in shown and "Open (https://x.example/runs/1)" in shown
    assert "<!channel>" in shown and "🔴" in shown and "bold" in shown and "*" not in shown


class ListenerApp:
    """A Bolt app's stand-in: acks at once and answers from tasks of its own (a listener
    that starts another), while a connection to an HTTP server, opened during the dispatch,
    stays idle in a client's pool as keep-alive connections do.
    """

    def __init__(self, console: Console, server: SampleCdeApi, client: httpx.AsyncClient) -> None:
        self.console, self.server, self.client = console, server, client

    async def async_dispatch(self, request: object) -> BoltResponse:
        # The server's handler of this connection lives on after the request (keep-alive).
        await self.client.get(f"{self.server.url}/runs/x")

        async def draw_answer() -> None:
            await asyncio.sleep(0.3)
            self.console.show(Posted("ops", "2.0", {"text": "the answer", "blocks": []}, "ephemeral"))

        async def listener() -> None:
            asyncio.get_running_loop().create_task(draw_answer())

        asyncio.get_running_loop().create_task(listener())
        return BoltResponse(status=200, body="")


async def test_the_console_waits_for_the_commands_work_and_not_for_idle_connections() -> None:
    out = io.StringIO()
    console = Console(out, channel="ops")
    async with SampleCdeApi(token=None) as server, httpx.AsyncClient() as client:
        console.bot = SimpleNamespace(app=ListenerApp(console, server, client))  # type: ignore[assignment]
        started = time.monotonic()
        await asyncio.wait_for(console.command("runs"), 30)
        took = time.monotonic() - started
    # The answer drawn by the listener's own task is on screen when the prompt comes back,
    # and the idle connection (kept 75 s by default) was not waited for.
    assert "the answer" in out.getvalue()
    assert took < 5, f"{took:.1f} s"
