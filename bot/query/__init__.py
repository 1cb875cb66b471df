"""The `/cde` command language: text in, a typed command or a precise error out (pure).

    /cde [help [topic]]             usage
    /cde runs [key:value ...]       list runs, e.g. `/cde runs site:1001 state:failed`
    /cde run <run-id>               one run

Every error names the word that is wrong and shows the right form, so the person can fix
the command without reading the help. Nothing invalid ever reaches the API.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.cde.models import RunFilter
from bot.notices.models import NoticeFilter
from bot.query.errors import (
    not_a_filter,
    not_a_subscription_filter,
    shown,
    unknown_key,
    unknown_subscription_key,
)
from bot.query.language import (
    ANCHOR_KEY,
    COMMAND,
    DEFAULT_AUDIT,
    DEFAULT_LIMIT,
    EXAMPLE_RUN,
    EXAMPLE_UUID,
    FILTER_KEYS,
    MAX_AUDIT,
    MAX_LIMIT,
    MAX_OFFSET,
    MAX_TEXT,
    PAGING_KEYS,
    QUOTES,
    RUNS_KEYS_BY_WORD,
    SUBCOMMANDS,
    SUBSCRIPTION_KEYS,
    SUBSCRIPTION_KEYS_BY_WORD,
    USAGE,
    Anchor,
    BadValue,
    FilterKey,
    describe_filter,
    parse_anchor,
    split_pair,
    subscription_words,
    uuid_value,
    whole_number,
)
from bot.store.base import MAX_ID

__all__ = [
    "ANCHOR_KEY", "COMMAND", "DEFAULT_AUDIT", "DEFAULT_LIMIT", "EXAMPLE_RUN", "EXAMPLE_UUID",
    "FILTER_KEYS", "MAX_AUDIT", "MAX_LIMIT", "MAX_OFFSET", "MAX_TEXT", "PAGING_KEYS", "SUBCOMMANDS",
    "SUBSCRIPTION_KEYS", "USAGE", "Anchor", "Audit", "Command", "FilterKey", "Help", "ListRuns",
    "ListSubscriptions", "QueryError", "ShowRun", "Subscribe", "Unsubscribe",
    "canonical_subcommand", "describe_filter", "parse", "subscription_words",
]


@dataclass(frozen=True)
class Help:
    """Show usage; `topic` narrows it to one sub-command."""

    topic: str | None = None


@dataclass(frozen=True)
class ListRuns:
    """`/cde runs`: one page of runs matching a filter; `offset` counts from the anchor's
    newest run when there is one.
    """

    run_filter: RunFilter = field(default_factory=RunFilter)
    offset: int = 0
    limit: int = DEFAULT_LIMIT
    anchor: Anchor | None = None

    def to_text(self) -> str:
        """The canonical command text; parsing it gives this command back."""
        words = ["runs", *describe_filter(self.run_filter)]
        if self.offset:
            words.append(f"from:{self.offset}")
        if self.limit != DEFAULT_LIMIT:
            words.append(f"limit:{self.limit}")
        if self.anchor is not None:
            words.append(self.anchor.to_word())
        return " ".join(words)

    def page(self, offset: int) -> ListRuns:
        """The same list at another offset."""
        return ListRuns(self.run_filter, max(0, offset), self.limit, self.anchor)

    def anchored(self, anchor: Anchor | None) -> ListRuns:
        """The same page, anchored at `anchor` (or not anchored at all)."""
        return ListRuns(self.run_filter, self.offset, self.limit, anchor)

    def fresh(self) -> ListRuns:
        """The first page of the list as it is now: the newest runs, no anchor."""
        return ListRuns(self.run_filter, 0, self.limit)


@dataclass(frozen=True)
class ShowRun:
    """`/cde run <id>`: every field of one run."""

    run_id: str


@dataclass(frozen=True)
class Subscribe:
    """`/cde subscribe [filters]`: follow failed runs matching the filter in this channel.

    An empty filter follows everything, so it needs `everything=True`,
    which the confirmation button sends.
    """

    notice_filter: NoticeFilter = field(default_factory=NoticeFilter)
    everything: bool = False


@dataclass(frozen=True)
class ListSubscriptions:
    """`/cde subscriptions`: this channel's subscriptions."""


@dataclass(frozen=True)
class Unsubscribe:
    """`/cde unsubscribe <id>` or `/cde unsubscribe all` (subscription_id None)."""

    subscription_id: int | None


@dataclass(frozen=True)
class Audit:
    """`/cde audit [N]`: the last `limit` changes to subscriptions, mutes and acknowledgements."""

    limit: int = DEFAULT_AUDIT


Command = Help | ListRuns | ShowRun | Subscribe | ListSubscriptions | Unsubscribe | Audit


@dataclass(frozen=True)
class QueryError:
    """Why the text is not a command, and the form that would be."""

    message: str
    usage: str | None = None


# ---------------------------------------------------------------------------------------
# Parsing


def parse(text: str) -> Command | QueryError:
    """Turn the text after `/cde` into a command, or say precisely what is wrong."""
    if len(text) > MAX_TEXT:
        return QueryError(f"That command is too long ({len(text)} characters; at most {MAX_TEXT}).")
    words = _words(text)
    if not words:
        return Help()
    verb, args = words[0].lower(), words[1:]
    parser = _PARSERS.get(verb)
    if parser is not None:
        return parser(args)
    suggestion = difflib.get_close_matches(verb, SUBCOMMANDS, n=1, cutoff=0.6)
    hint = f" Did you mean `{COMMAND} {suggestion[0]}`?" if suggestion else ""
    return QueryError(
        f"`{shown(words[0])}` is not a {COMMAND} command.{hint} "
        f"Try `{COMMAND} help` for the list.",
    )


def _parse_help(args: list[str]) -> Help:
    return Help(args[0].lower() if args else None)


def _parse_subscriptions(args: list[str]) -> ListSubscriptions | QueryError:
    if args:
        return QueryError(f"`{COMMAND} subscriptions` takes no arguments.", USAGE["subscriptions"])
    return ListSubscriptions()


def _words(text: str) -> list[str]:
    """Split on white space, strip pasted quotes, and join `key: value` into one word."""
    # Slack escapes these three in command text; undo it so the words are what was typed.
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    raw = [word.strip(QUOTES) for word in text.split()]
    words: list[str] = []
    for word in raw:
        if not word:
            continue
        if words and words[-1].endswith((":", "=")) and ":" not in words[-1][:-1]:
            words[-1] += word
        else:
            words.append(word)
    return words


def _parse_run(args: list[str]) -> ShowRun | QueryError:
    usage = USAGE["run"]
    if not args:
        return QueryError("Which run? Give its id.", usage)
    if len(args) > 1:
        return QueryError(f"`{COMMAND} run` takes one run id, not {len(args)} words.", usage)
    word = args[0]
    value = word.split(":", 1)[1] if word.lower().startswith(("id:", "run:")) else word
    try:
        return ShowRun(uuid_value("run id", value))
    except BadValue:
        return QueryError(f"`{shown(word)}` is not a run id: a run id is a UUID.", usage)


def _parse_runs(args: list[str]) -> ListRuns | QueryError:
    values = _parse_pairs(args, RUNS_KEYS_BY_WORD, USAGE["runs"], not_a_filter, unknown_key)
    if isinstance(values, QueryError):
        return values
    offset = int(values.pop("offset", 0))
    limit = int(values.pop("limit", DEFAULT_LIMIT))
    anchor = parse_anchor(str(values.pop("anchor"))) if "anchor" in values else None
    return ListRuns(RunFilter(**values), offset=offset, limit=limit, anchor=anchor)


def _parse_subscribe(args: list[str]) -> Subscribe | QueryError:
    if [word.lower() for word in args] == ["all"]:
        # Following everything is always confirmed with a click, typed `all` or not.
        return Subscribe(NoticeFilter())
    values = _parse_pairs(args, SUBSCRIPTION_KEYS_BY_WORD, USAGE["subscribe"],
                          not_a_subscription_filter, unknown_subscription_key)
    if isinstance(values, QueryError):
        return values
    return Subscribe(NoticeFilter.from_dict(values))


def _parse_pairs(
    args: list[str], keys: dict[str, FilterKey], usage: str,
    not_a_pair: Callable[[str], str], unknown: Callable[[str, str], str],
) -> dict[str, str | int] | QueryError:
    """`key:value` words checked against `keys`: the values by field, or the first error."""
    values: dict[str, str | int] = {}
    for word in args:
        key_word, sep, value = split_pair(word)
        if not sep:
            return QueryError(not_a_pair(word), usage)
        if not value:
            return QueryError(f"`{shown(word)}` has no value after the `:`.", usage)
        key = keys.get(key_word.lower().replace("_", "-"))
        if key is None:
            return QueryError(unknown(key_word, word), usage)
        if key.field in values:
            return QueryError(f"`{key.name}` is given twice; give each filter once.", usage)
        try:
            values[key.field] = key.check(key.name, value)
        except BadValue as exc:
            return QueryError(f"`{shown(word)}`: {exc}", usage)
    return values


def _parse_unsubscribe(args: list[str]) -> Unsubscribe | QueryError:
    usage = USAGE["unsubscribe"]
    if len(args) != 1:
        return QueryError("Which subscription? Give its id (see `/cde subscriptions`) or `all`.",
                          usage)
    word = args[0].lstrip("#")
    if word.lower() == "all":
        return Unsubscribe(None)
    if word.isascii() and word.isdigit():
        number = whole_number(word)
        if number <= MAX_ID:
            return Unsubscribe(number)
        return QueryError(f"`{shown(args[0])}` is not a subscription id: ids go from 1 to {MAX_ID} "
                          f"(see `{COMMAND} subscriptions`).", usage)
    return QueryError(f"`{shown(args[0])}` is not a subscription id; ids are numbers shown by "
                      f"`{COMMAND} subscriptions`.", usage)


def _parse_audit(args: list[str]) -> Audit | QueryError:
    usage = USAGE["audit"]
    if not args:
        return Audit()
    if len(args) > 1:
        return QueryError(f"`{COMMAND} audit` takes one number, not {len(args)} words.", usage)
    word = args[0]
    if not (word.isascii() and word.isdigit()):
        return QueryError(f"`{shown(word)}` is not a number of changes; give a whole number, "
                          f"e.g. `{COMMAND} audit 50`.", usage)
    # Long digit strings are out of range whatever they say; int() of them is not needed.
    count = int(word) if len(word) <= 6 else MAX_AUDIT + 1
    if not 1 <= count <= MAX_AUDIT:
        return QueryError(f"`{shown(word)}` is out of range: `{COMMAND} audit` shows 1 to "
                          f"{MAX_AUDIT} changes.", usage)
    return Audit(count)


# Each sub-command (and its other spellings) and how its arguments are read.
_PARSERS: dict[str, Callable[[list[str]], Command | QueryError]] = {
    "help": _parse_help, "-h": _parse_help, "--help": _parse_help, "?": _parse_help,
    "runs": _parse_runs,
    "run": _parse_run,
    "subscribe": _parse_subscribe,
    "subscriptions": _parse_subscriptions, "subs": _parse_subscriptions,
    "unsubscribe": _parse_unsubscribe,
    "audit": _parse_audit,
}


def canonical_subcommand(text: str) -> str | None:
    """The sub-command (one of `SUBCOMMANDS`) the first word of `text` names, whichever of
    its spellings was typed; None when it names none."""
    words = _words(text)
    return _CANONICAL.get(words[0].lower()) if words else None


_CANONICAL = {word: name for name in SUBCOMMANDS for word, parser in _PARSERS.items()
              if parser is _PARSERS.get(name)}
