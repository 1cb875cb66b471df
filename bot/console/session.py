"""The console session: the real bot (same Bolt app, listeners, renderers, poller) wired to
a local Slack, driven by lines of text.

Commands are dispatched to Bolt exactly as Socket Mode delivers them (a payload, no HTTP
signature), clicks as `block_actions` payloads built from the buttons on screen.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from slack_bolt.request.async_request import AsyncBoltRequest

from bot.console.local_slack import LocalSlack, Posted
from bot.console.screen import Screen, Shown
from bot.console.terminal import Control
from bot.console.work import run_command, track_command_tasks
from bot.server import Bot

# Words that press the matching control of the latest message that has one.
SHORTCUTS = {
    "next": "_next", "prev": "_prev", "previous": "_prev", "share": "runs_share",
    "ack": "incident_ack", "acknowledge": "incident_ack", "mute": "incident_mute",
    "unmute": "incident_mute", "recent": "recent", "confirm": "subscribe_all",
}
# The console's own words, besides the bot's sub-commands and the shortcuts.
CONSOLE_WORDS = ("press", "show", "wait", "clear", "quit")
MAX_WAIT = 600.0
_HOURS = re.compile(r"(\d+)\s*(?:h|hours?)", re.IGNORECASE)
PRESS_USAGE = "`press N` presses button [N]; `press N K` picks choice K of menu [N]."


class Console:
    def __init__(self, out: TextIO, *, channel: str = "console", user: str = "you",
                 json_output: bool = False, color: bool = False) -> None:
        self.screen = Screen(out, json_output=json_output, color=color)
        self.channel = channel
        self.user = user
        self.slack = LocalSlack(on_message=self.screen.show)
        self.bot: Bot | None = None
        # How `clear` clears the terminal; a script has none to clear.
        self.clear_screen: Callable[[], None] | None = None
        self._tracked: asyncio.AbstractEventLoop | None = None

    # -- output ----------------------------------------------------------------------------

    @property
    def out(self) -> TextIO:
        return self.screen.out

    @out.setter
    def out(self, out: TextIO) -> None:
        self.screen.out = out

    def show(self, posted: Posted) -> None:
        """Draw a message the bot sent (see Screen.show)."""
        self.screen.show(posted)

    def say(self, text: str) -> None:
        self.screen.say(text)

    def note(self, text: str) -> None:
        """A remark of the console's own; on stderr with --json."""
        self.screen.note(text)

    # -- input -----------------------------------------------------------------------------

    async def handle(self, line: str) -> bool:
        """Act on one line; False when the person asked to leave."""
        line = line.strip()
        if not line or line.startswith("#"):
            return True
        word, _, rest = line.partition(" ")
        word, rest = word.lower(), rest.strip()
        if word in ("quit", "exit", "q"):
            return False
        own: dict[str, Callable[[str], Awaitable[None]]] = {
            "wait": self._wait, "press": self._press_words, "show": self._show, "clear": self._clear,
        }
        if word in own:
            await own[word](rest)
        elif word in SHORTCUTS:
            await self._press_shortcut(word, rest)
        else:
            await self.command(line[4:].strip() if line.lower().startswith("/cde") else line)
        return True

    async def _wait(self, seconds: str) -> None:
        # For scripts: give the poller time to find and post new failures.
        if not seconds.replace(".", "", 1).isdigit() or not 0 < float(seconds) <= MAX_WAIT:
            self.note(f"`wait` takes a number of seconds up to {MAX_WAIT:g}, e.g. `wait 10`.")
        else:
            await asyncio.sleep(float(seconds))

    async def _clear(self, _: str) -> None:
        if self.clear_screen is not None:
            self.clear_screen()

    async def _show(self, number: str) -> None:
        shown = self.screen.messages.get(int(number)) if number.isdigit() else None
        if shown is None:
            last = len(self.screen.messages)
            on_screen = f"messages 1–{last} are above" if last else "no message is on screen yet"
            self.note(f"`show N` draws message N (the number in its ── header ──) in full again; "
                      f"{on_screen}.")
            return
        self.screen.redraw(shown)

    def _buttons_on_screen(self) -> str:
        numbers = self.screen.numbers_on_screen()
        if not numbers:
            return "No buttons on screen yet: they come with the bot's answers (try `runs`)."
        return f"Buttons on screen: {numbers}."

    async def _press_words(self, rest: str) -> None:
        number, _, option = rest.partition(" ")
        if not number.isdigit():
            self.note(f"{PRESS_USAGE} {self._buttons_on_screen()}")
            return
        if int(number) in self.screen.gone:
            shown = self.screen.gone[int(number)]
            self.note(f"Button [{number}] is gone: message {shown.number} changed since "
                      f"(`show {shown.number}` draws it as it is now).")
            return
        if int(number) not in self.screen.controls:
            self.note(f"No button [{number}] on screen. {self._buttons_on_screen()}")
            return
        control, shown = self.screen.controls[int(number)]
        await self.press(control, shown, option.strip() or None)

    async def _press_shortcut(self, word: str, rest: str) -> None:
        wanted = SHORTCUTS[word]
        for shown in sorted(self.screen.messages.values(), key=lambda s: s.number, reverse=True):
            for control in shown.controls:
                if control.action_id.endswith(wanted) or control.action_id == wanted:
                    choice = self._shortcut_choice(word, rest, control)
                    if choice != "":
                        await self.press(control, shown, choice)
                    return
        self.note(f"No message above has a button for `{word}`.")

    def _shortcut_choice(self, word: str, rest: str, control: Control) -> str | None:
        """The place in `control`'s menu that `mute 4h` or `unmute` names, None to have the
        menu explained, "" when the words name no choice (said on screen).
        """
        if not control.options:
            return rest or None
        value = "0" if word == "unmute" else None
        hours = _HOURS.fullmatch(rest)
        if hours:
            value = str(int(hours.group(1)))
        elif rest:
            self.note(f"`{word} {rest}`: say `mute 4h` (or `mute 4 hours`) for four hours, or pick by "
                      f"place: `press {control.number} <1-{len(control.options)}>`.")
            return ""
        if value is None:
            return None
        for place, (_, option_value) in enumerate(control.options, 1):
            if option_value == value:
                return str(place)
        self.note(f"[{control.number}] {control.label} has no such choice: {menu_choices(control)}.")
        return ""

    async def command(self, text: str) -> None:
        payload = {
            "token": "console", "team_id": "T0CONSOLE", "team_domain": "console",
            "channel_id": self.channel, "channel_name": self.channel, "user_id": self.user,
            "user_name": self.user, "command": "/cde", "text": text, "api_app_id": "A0CONSOLE",
            "is_enterprise_install": "false", "trigger_id": f"console.{time.time()}",
            "response_url": self.slack.response_url(self.channel),
        }
        await self._dispatch(payload)

    async def press(self, control: Control, shown: Shown, option: str | None = None) -> None:
        """Press `control` on message `shown`; `option` is the place of a menu's choice."""
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
                self.note(f"[{control.number}] {control.label} is a menu: {menu_choices(control)}.")
                return
            label, value = chosen
            action |= {"type": "static_select", "selected_option": {
                "text": {"type": "plain_text", "text": label}, "value": value}}
        elif option is not None:
            self.note(f"[{control.number}] {control.label} is a button: `press {control.number}`.")
            return
        elif control.value is not None:
            action["value"] = control.value
        await self._dispatch(self._click(shown.posted, action))

    def _click(self, posted: Posted, action: dict[str, Any]) -> dict[str, Any]:
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
        return payload

    async def _dispatch(self, payload: dict[str, Any]) -> None:
        """Hand the payload to Bolt as Socket Mode would, show the ack's content, and wait
        until the work it started (the listener: API calls, answers) is done, and no longer.
        """
        assert self.bot is not None
        loop = asyncio.get_running_loop()
        if self._tracked is not loop:
            track_command_tasks(loop)
            self._tracked = loop
        request = AsyncBoltRequest(body=payload, mode="socket_mode")
        response, finished = await run_command(self.bot.app.async_dispatch(request))
        if response.status != 200:
            self.note(f"(the bot answered HTTP {response.status}: {response.body})")
        elif response.body:
            body = json.loads(response.body)
            self.show(Posted(self.channel, self.slack.next_ts(),
                             {"text": body.get("text", ""), "blocks": body.get("blocks", [])},
                             "ephemeral"))
        if not finished:
            self.note("(the bot is still working on that; its answer will appear when it is ready)")


def menu_choices(control: Control) -> str:
    """How to pick from a menu, as said on screen: `press 4 <1-3>`: 1 = …, 2 = …"""
    choices = ", ".join(f"{i} = {label}" for i, (label, _) in enumerate(control.options, 1))
    return f"`press {control.number} <1-{len(control.options)}>`: {choices}"


def _option(control: Control, place: str | None) -> tuple[str, str] | None:
    """The menu option at `place` (1 is the first, as shown on screen), or None. Places only:
    a number never means a value here (`mute 4h` names hours).
    """
    if place is None or not place.isdigit() or not 1 <= int(place) <= len(control.options):
        return None
    return control.options[int(place) - 1]
