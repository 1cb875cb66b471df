"""The console session: the real bot (same Bolt app, listeners, renderers, poller) wired to
a local Slack, driven by lines of text.

Commands are dispatched to Bolt exactly as Socket Mode delivers them (a payload, no HTTP
signature), clicks as `block_actions` payloads built from the buttons on screen.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from slack_bolt.request.async_request import AsyncBoltRequest

from bot.console.local_slack import LocalSlack, Posted
from bot.console.terminal import Control, draw
from bot.server import Bot

# Words that press the matching control of the latest message that has one.
SHORTCUTS = {
    "next": "_next", "prev": "_prev", "previous": "_prev", "share": "runs_share",
    "ack": "incident_ack", "acknowledge": "incident_ack", "mute": "incident_mute",
    "unmute": "incident_mute", "recent": "recent", "confirm": "subscribe_all",
}
WORK_TIMEOUT = 60.0
MAX_WAIT = 600.0


@dataclass
class Shown:
    posted: Posted
    controls: list[Control] = field(default_factory=list)


class Console:
    def __init__(self, out: TextIO, *, channel: str = "console", user: str = "you",
                 json_output: bool = False, color: bool = False) -> None:
        self.out = out
        self.channel = channel
        self.user = user
        self.json_output = json_output
        self.color = color
        self.slack = LocalSlack(on_message=self.show)
        self.bot: Bot | None = None
        self._numbers = itertools.count(1)
        self._shown: list[Shown] = []
        self._controls: dict[int, tuple[Control, Shown]] = {}
        # Shown again after a message that arrives while the person is typing.
        self.prompt = ""

    # -- output ----------------------------------------------------------------------------

    def show(self, posted: Posted) -> None:
        """Print a message the bot sent, and remember its controls. A message drawn again
        (updated, replaced) or removed takes its old controls with it: only what is on
        screen now can be pressed.
        """
        self._forget(posted)
        if self.prompt:
            self.out.write("\n")  # off the prompt line the person was typing on
        if posted.how == "delete":
            if not self.json_output:
                self.say(f"── #{posted.channel} · (the answer above was removed) ──")
            else:
                self.say(json.dumps({"channel": posted.channel, "ts": posted.ts, "how": "delete"}))
            return
        if self.json_output:
            # One object per line, so that the output is a JSON Lines stream.
            self.say(json.dumps({"channel": posted.channel, "ts": posted.ts, "how": posted.how,
                                 "thread_ts": posted.thread_ts, **posted.message}, ensure_ascii=False))
            drawn_controls = draw(posted.message, self._numbers).controls
        else:
            drawn = draw(posted.message, self._numbers, color=self.color)
            drawn_controls = drawn.controls
            self.say(f"── {self._where(posted)} ──\n{drawn.text}\n")
        shown = Shown(posted, drawn_controls)
        self._shown.append(shown)
        for control in drawn_controls:
            self._controls[control.number] = (control, shown)
        if self.prompt:
            self.out.write(self.prompt)
            self.out.flush()

    def _forget(self, posted: Posted) -> None:
        if posted.how not in ("update", "replace", "delete"):
            return
        gone = [s for s in self._shown if (s.posted.channel, s.posted.ts) == (posted.channel, posted.ts)]
        for shown in gone:
            self._shown.remove(shown)
            for control in shown.controls:
                self._controls.pop(control.number, None)

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        """A remark of the console's own (not a message from the bot): on stderr with
        --json, so that stdout stays pure JSON.
        """
        if self.json_output:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
        else:
            self.say(text)

    @staticmethod
    def _where(posted: Posted) -> str:
        where = f"#{posted.channel}"
        return {
            "ephemeral": f"{where} · only you can see this",
            "replace": f"{where} · replaces the answer above",
            "update": f"{where} · message {posted.ts} updated",
            "reply": f"{where} · reply in the thread of {posted.thread_ts}",
            "post": f"{where} · message {posted.ts}",
        }.get(posted.how, where)

    # -- input -----------------------------------------------------------------------------

    async def handle(self, line: str) -> bool:
        """Act on one line; False when the person asked to leave."""
        line = line.strip()
        if not line or line.startswith("#"):
            return True
        word, _, rest = line.partition(" ")
        word = word.lower()
        if word in ("quit", "exit", "q"):
            return False
        if word == "wait":
            # For scripts: give the poller time to find and post new failures.
            seconds = rest.strip()
            if not seconds.replace(".", "", 1).isdigit() or not 0 < float(seconds) <= MAX_WAIT:
                self.note(f"`wait` takes a number of seconds up to {MAX_WAIT:g}, e.g. `wait 10`.")
            else:
                await asyncio.sleep(float(seconds))
        elif word == "press":
            number, _, option = rest.strip().partition(" ")
            await self._press_number(number, option.strip() or None)
        elif word in SHORTCUTS:
            given = rest.strip() or ("0" if word == "unmute" else None)
            await self._press_shortcut(word, given)
        else:
            await self.command(line[4:].strip() if line.lower().startswith("/cde") else line)
        return True

    async def command(self, text: str) -> None:
        payload = {
            "token": "console", "team_id": "T0CONSOLE", "team_domain": "console",
            "channel_id": self.channel, "channel_name": self.channel, "user_id": self.user,
            "user_name": self.user, "command": "/cde", "text": text, "api_app_id": "A0CONSOLE",
            "is_enterprise_install": "false", "trigger_id": f"console.{time.time()}",
            "response_url": self.slack.response_url(self.channel),
        }
        await self._dispatch(payload)

    async def _press_number(self, number: str, option: str | None) -> None:
        if not number.isdigit() or int(number) not in self._controls:
            self.note(f"No button [{number}] on screen; the numbers are in the messages above.")
            return
        control, shown = self._controls[int(number)]
        await self.press(control, shown, option)

    async def _press_shortcut(self, word: str, option: str | None) -> None:
        wanted = SHORTCUTS[word]
        for shown in reversed(self._shown):
            for control in shown.controls:
                if control.action_id.endswith(wanted) or control.action_id == wanted:
                    await self.press(control, shown, option)
                    return
        self.note(f"No message above has a button for `{word}`.")

    async def press(self, control: Control, shown: Shown, option: str | None = None) -> None:
        if control.url:
            self.note(f"Open {control.url} in a browser.")
        action: dict[str, Any] = {
            "action_id": control.action_id, "block_id": control.block_id or "console",
            "text": {"type": "plain_text", "text": control.label}, "type": "button",
            "action_ts": str(time.time()),
        }
        if control.options:
            chosen = _option(control, option)
            if chosen is None:
                self.note(f"[{control.number}] {control.label} is a menu: choose 1 to "
                          f"{len(control.options)}, e.g. `press {control.number} 1`.")
                return
            label, option = chosen
            action |= {"type": "static_select", "selected_option": {
                "text": {"type": "plain_text", "text": label}, "value": option}}
        elif option is not None:
            self.note(f"[{control.number}] {control.label} is a button: `press {control.number}`.")
            return
        elif control.value is not None:
            action["value"] = control.value
        posted = shown.posted
        ephemeral = posted.how in ("ephemeral", "replace")
        payload: dict[str, Any] = {
            "type": "block_actions", "api_app_id": "A0CONSOLE", "token": "console",
            "user": {"id": self.user, "username": self.user, "name": self.user, "team_id": "T0CONSOLE"},
            "team": {"id": "T0CONSOLE", "domain": "console"},
            "channel": {"id": posted.channel, "name": posted.channel},
            "container": {"type": "message", "message_ts": posted.ts, "channel_id": posted.channel,
                          "is_ephemeral": ephemeral},
            "trigger_id": f"console.{time.time()}",
            "response_url": self.slack.response_url(posted.channel, posted.ts),
            "actions": [action],
        }
        if not ephemeral:
            payload["message"] = {"type": "message", "ts": posted.ts, **posted.message}
        await self._dispatch(payload)

    async def _dispatch(self, payload: dict[str, Any]) -> None:
        """Hand the payload to Bolt as Socket Mode would, show the ack's content, and wait
        until the work it started (API calls, answers) is done.
        """
        assert self.bot is not None
        before = asyncio.all_tasks()
        response = await self.bot.app.async_dispatch(AsyncBoltRequest(body=payload, mode="socket_mode"))
        if response.status != 200:
            self.note(f"(the bot answered HTTP {response.status}: {response.body})")
        elif response.body:
            body = json.loads(response.body)
            self.show(Posted(self.channel, self.slack.next_ts(),
                             {"text": body.get("text", ""), "blocks": body.get("blocks", [])},
                             "ephemeral"))
        started = asyncio.all_tasks() - before - {asyncio.current_task()}
        if started:
            await asyncio.wait(started, timeout=WORK_TIMEOUT)


def _option(control: Control, choice: str | None) -> tuple[str, str] | None:
    """The menu option `choice` names: by its value (`mute 4` is four hours), else by its
    place in the menu as shown (`press 5 2`).
    """
    if choice is None:
        return None
    for label, value in control.options:
        if value == choice:
            return label, value
    if choice.isdigit() and 1 <= int(choice) <= len(control.options):
        return control.options[int(choice) - 1]
    return None
