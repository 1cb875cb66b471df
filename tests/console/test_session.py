"""The console's screen bookkeeping: only what is on screen now can be pressed."""

from __future__ import annotations

import io
import json

from bot.console.local_slack import Posted
from bot.console.session import Console
from bot.console.terminal import mrkdwn


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


def test_a_redrawn_message_takes_its_old_buttons_away() -> None:
    console = Console(io.StringIO(), channel="ops")
    console.show(notice("1.0"))
    assert [c.label for c, _ in console._controls.values()] == ["Acknowledge", "Recent runs"]
    console.show(notice("1.0", acknowledged=True))
    # Only the redrawn message's buttons remain: the old Acknowledge cannot be pressed.
    assert [c.label for c, _ in console._controls.values()] == ["Recent runs"]
    assert len(console._shown) == 1


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


def test_menu_options_by_value_or_by_place() -> None:
    from bot.console.session import _option
    from bot.console.terminal import Control

    menu = Control(3, "Mute…", "incident_mute",
                   options=(("Mute for 1 hour", "1"), ("Mute for 4 hours", "4"), ("Mute for 24 hours", "24")))
    assert _option(menu, "4") == ("Mute for 4 hours", "4")  # `mute 4`: four hours
    assert _option(menu, "3") == ("Mute for 24 hours", "24")  # `press 3 3`: the third option
    assert _option(menu, "7") is None and _option(menu, None) is None
