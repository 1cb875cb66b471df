"""What the console has drawn: every message by its number, and the buttons on it.

A message keeps its number and its buttons keep theirs for the whole session, across its
updates; a button an update took away cannot be pressed any more. An update of a message
already on screen is one line saying what changed (`show N` draws it in full again), so that
a notice updated on every failure does not fill the terminal.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from bot.console.local_slack import Posted
from bot.console.terminal import Control, Drawn, draw
from bot.redact import Redactor

# How much of what changed a one-line update shows.
MAX_CHANGE = 200


@dataclass
class Shown:
    """A message on screen: its number, as it was last drawn, and its controls."""

    number: int
    posted: Posted
    content: list[str] = field(default_factory=list)
    controls: list[Control] = field(default_factory=list)


class Screen:
    """The console's output, and the bookkeeping of what it has drawn."""

    def __init__(self, out: TextIO, *, json_output: bool = False, color: bool = False) -> None:
        self.out = out
        self.json_output = json_output
        self.color = color
        # Everything the console writes passes through it; `run_console` gives it the
        # settings' secrets once they are known.
        self.redactor = Redactor(())
        self.controls: dict[int, tuple[Control, Shown]] = {}
        # Numbers of buttons an update took away, and the message they were on.
        self.gone: dict[int, Shown] = {}
        self.messages: dict[int, Shown] = {}
        self._by_ts: dict[tuple[str, str], Shown] = {}
        self._button_numbers = itertools.count(1)
        self._message_numbers = itertools.count(1)

    # -- writing ---------------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.out.write(self.redactor.text(text) + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        """A remark of the console's own (not a message from the bot): on stderr with
        --json, so that stdout stays pure JSON.
        """
        if self.json_output:
            sys.stderr.write(self.redactor.text(text) + "\n")
            sys.stderr.flush()
        else:
            self.say(text)

    # -- messages --------------------------------------------------------------------------

    def show(self, posted: Posted) -> None:
        """Draw a message the bot sent (or an update of one) and remember its controls."""
        known = self._by_ts.get((posted.channel, posted.ts))
        if posted.how == "delete":
            self._delete(posted, known)
            return
        if posted.how not in ("update", "replace"):
            known = None  # a new message, whatever its ts
        drawn = draw(posted.message, self._numbering(known), color=self.color)
        changes = known_changes(known, drawn) if known is not None else ""
        shown = self._remember(posted, drawn, known)
        if self.json_output:
            # One object per line, so that the output is a JSON Lines stream.
            self.say(json.dumps({"channel": posted.channel, "ts": posted.ts, "how": posted.how,
                                 "thread_ts": posted.thread_ts, **posted.message}, ensure_ascii=False))
        elif known is not None and posted.how == "update":
            self.say(f"── #{posted.channel} · message {shown.number} updated: "
                     f"{changes} · `show {shown.number}` ──")
        else:
            self.say(f"── {self._where(shown, known)} ──\n{drawn.text}\n")

    def redraw(self, shown: Shown) -> None:
        """Draw message `shown` in full again, as it is now, with its buttons' numbers."""
        drawn = draw(shown.posted.message, self._numbering(shown), color=self.color)
        self.say(f"── #{shown.posted.channel} · message {shown.number} as it is now ──\n{drawn.text}\n")

    def _numbering(self, known: Shown | None) -> Callable[[str], int]:
        """Numbers for a message's controls: those it had keep theirs, new ones get new ones."""
        kept = {control.action_id: control.number for control in known.controls} if known else {}

        def number(action_id: str) -> int:
            return kept.pop(action_id, None) or next(self._button_numbers)

        return number

    def _remember(self, posted: Posted, drawn: Drawn, known: Shown | None) -> Shown:
        if known is None:
            shown = Shown(next(self._message_numbers), posted, drawn.content, drawn.controls)
            self.messages[shown.number] = shown
        else:
            shown = known
            now = {control.number for control in drawn.controls}
            for control in known.controls:
                if control.number not in now:
                    self.controls.pop(control.number, None)
                    self.gone[control.number] = known
            shown.posted, shown.content, shown.controls = posted, drawn.content, drawn.controls
        self._by_ts[(posted.channel, posted.ts)] = shown
        for control in drawn.controls:
            self.controls[control.number] = (control, shown)
        return shown

    def _delete(self, posted: Posted, known: Shown | None) -> None:
        if known is not None:
            for control in known.controls:
                self.controls.pop(control.number, None)
                self.gone[control.number] = known
            known.controls = []
        if self.json_output:
            self.say(json.dumps({"channel": posted.channel, "ts": posted.ts, "how": "delete"}))
        elif known is not None:
            self.say(f"── #{posted.channel} · message {known.number} was removed ──")
        else:
            self.say(f"── #{posted.channel} · (the answer above was removed) ──")

    def _where(self, shown: Shown, replaced: Shown | None) -> str:
        posted = shown.posted
        where = f"#{posted.channel} · message {shown.number}"
        if posted.how == "reply":
            parent = self._by_ts.get((posted.channel, posted.thread_ts or ""))
            return f"{where} · reply in the thread of message {parent.number if parent else posted.thread_ts}"
        if posted.how == "replace":
            return f"{where} · replaces {'the answer above' if replaced else 'an earlier answer'}"
        return {
            "ephemeral": f"{where} · only you can see this",
            "update": f"{where} · updated",
        }.get(posted.how, where)

    # -- looking up ------------------------------------------------------------------------

    def numbers_on_screen(self) -> str:
        """The button numbers that can be pressed, as short ranges, e.g. `[1]-[4], [7]`."""
        numbers = sorted(self.controls)
        ranges: list[list[int]] = []
        for number in numbers:
            if ranges and ranges[-1][-1] == number - 1:
                ranges[-1].append(number)
            else:
                ranges.append([number])
        return ", ".join(f"[{r[0]}]" if len(r) == 1 else f"[{r[0]}]–[{r[-1]}]" for r in ranges)


def known_changes(before: Shown, drawn: Drawn) -> str:
    """What an update changed, in one line: the lines that are new, and the buttons it
    added or took away.
    """
    new = [line for line in drawn.content if line not in before.content and line.strip()]
    # A field (`  Label: value`) is named, not quoted: the status lines say what happened.
    fields = [line.strip().partition(":")[0] for line in new if line.startswith("  ") and ":" in line]
    changes = [line.strip() for line in new if not (line.startswith("  ") and ":" in line)]
    if fields:
        changes.append("new " + ", ".join(fields))
    labels_before = {control.number: control.label for control in before.controls}
    labels_now = {control.number: control.label for control in drawn.controls}
    changes += [f"[{n}] {label} gone" for n, label in labels_before.items() if n not in labels_now]
    changes += [f"new button [{n}] {label}" for n, label in labels_now.items() if n not in labels_before]
    changes += [f"[{n}] is now {label}" for n, label in labels_now.items()
                if labels_before.get(n, label) != label]
    text = "; ".join(changes) or "nothing visible changed"
    return text if len(text) <= MAX_CHANGE else text[: MAX_CHANGE - 1] + "…"
