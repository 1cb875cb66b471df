"""The console in a terminal: line editing, history, completion (prompt_toolkit).

Messages that arrive while a line is being typed are drawn above it, and the half-typed
line stays as it was (`patch_stdout`). History is kept in the user's data directory; a
history that cannot be read or written costs the history only, never the session.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.patch_stdout import patch_stdout

from bot.console.session import CONSOLE_WORDS, SHORTCUTS, Console
from bot.query import FILTER_KEYS, PAGING_KEYS, SUBCOMMANDS, SUBSCRIPTION_KEYS

log = logging.getLogger(__name__)
PROMPT = "cde> "

FIRST_WORDS = tuple(dict.fromkeys((*SUBCOMMANDS, *CONSOLE_WORDS, *SHORTCUTS)))
# The `key:` words each sub-command takes.
KEYS = {
    "runs": tuple(f"{key.name}:" for key in (*FILTER_KEYS, *PAGING_KEYS)),
    "subscribe": (*(f"{key.name}:" for key in SUBSCRIPTION_KEYS), "all"),
    "unsubscribe": ("all",),
}


def history_path() -> Path:
    """Where the console's history lives: $XDG_DATA_HOME/cde-bot, else ~/.local/share/cde-bot."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cde-bot" / "console_history"


class _KeptHistory(FileHistory):
    """A file history that shrugs off a file it cannot read or write."""

    def load_history_strings(self) -> Iterable[str]:
        try:
            return list(super().load_history_strings())
        except OSError as exc:
            log.warning("Console history %s cannot be read: %s", self.filename, exc)
            return []

    def store_string(self, string: str) -> None:
        try:
            super().store_string(string)
        except OSError as exc:
            log.warning("Console history %s cannot be written: %s", self.filename, exc)


def history(path: Path | None = None) -> History:
    """The history at `path` (made if need be), or one kept in memory when that fails."""
    path = path or history_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("Console history stays in memory: %s cannot be made: %s", path.parent, exc)
        return InMemoryHistory()
    return _KeptHistory(str(path))


class ConsoleCompleter(Completer):
    """Completes the first word (sub-commands and the console's words) and `key:` filters."""

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        words = document.text_before_cursor.split()
        if words and words[0].lower() == "/cde":
            words = words[1:]
        typing = document.get_word_before_cursor(WORD=True)
        if typing and words:
            words = words[:-1]  # the word being typed is completed, not looked at
        choices = FIRST_WORDS if not words else KEYS.get(words[0].lower(), ())
        for choice in choices:
            if choice.startswith(typing.lower()) and choice != typing:
                yield Completion(choice, start_position=-len(typing))


async def read_in_terminal(console: Console) -> None:
    """Prompt for lines and act on them until `quit`, Ctrl-D or Ctrl-C."""
    session: PromptSession[str] = PromptSession(
        history=history(), completer=ConsoleCompleter(), complete_while_typing=False)

    def clear_screen() -> None:
        console.out.flush()
        session.output.erase_screen()
        session.output.cursor_goto(0, 0)
        session.output.flush()

    console.clear_screen = clear_screen
    # raw: the console's own colours pass through the proxy untouched.
    terminal = console.out
    try:
        with patch_stdout(raw=True):
            console.out = sys.stdout  # the proxy, which draws above the line being typed
            while True:
                try:
                    line = await session.prompt_async(PROMPT)
                except (EOFError, KeyboardInterrupt):  # Ctrl-D, Ctrl-C: leave, closing up
                    return
                if not await console.handle(line):
                    return
    finally:
        console.out = terminal  # what is drawn while the console closes goes straight out
