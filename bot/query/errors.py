"""What the `/cde` command language says when a word is wrong: each message names the
word and shows the right form, so the person can fix the command without reading the help.
"""

from __future__ import annotations

import difflib
import uuid

from bot.query.language import (
    COMMAND,
    FILTER_KEYS,
    KEYS_BY_WORD,
    SUBSCRIPTION_KEYS,
    SUBSCRIPTION_KEYS_BY_WORD,
    SUBSCRIPTION_ONLY,
    split_pair,
    whole_number,
)
from bot.store.base import MAX_ID


def unknown_subscription_key(key_word: str, word: str) -> str:
    name = key_word.lower()
    if name in ("state", "status"):
        return f"Subscriptions always follow failed runs; leave out `{shown(word)}`."
    close = difflib.get_close_matches(name, list(SUBSCRIPTION_KEYS_BY_WORD), n=1, cutoff=0.6)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    if name in ("id", "run", "run-id"):
        hint = (" A subscription follows failures still to come, not one run; to see a run, "
                f"use `{COMMAND} run <run-id>`.")
    known = ", ".join(f"`{k.name}`" for k in SUBSCRIPTION_KEYS)
    return f"`{shown(key_word)}` is not a subscription filter.{hint} Filters: {known}."


def not_a_subscription_filter(word: str) -> str:
    try:
        ident = str(uuid.UUID(word))
    except ValueError:
        return (f"`{shown(word)}` is not a filter: filters look like `key:value`, "
                "e.g. `site:1001` or `project:650`.")
    return (f"`{shown(word)}` needs a key: to follow a connector, use `connector:{ident}` "
            f"(or `process:{ident}` for a process).")


def not_a_filter(word: str) -> str:
    try:
        run_id = str(uuid.UUID(word))
    except ValueError:
        return (f"`{shown(word)}` is not a filter: filters look like `key:value`, "
                f"e.g. `site:1001` or `state:failed`.")
    return f"To show one run, use `{COMMAND} run {run_id}` (or filter with `id:{run_id}`)."


def unknown_key(key_word: str, word: str = "") -> str:
    name = key_word.lower().replace("_", "-")
    if name in SUBSCRIPTION_ONLY:
        return subscription_only(name.removesuffix("-id"), word)
    choices = [*KEYS_BY_WORD, "from", "limit"]
    close = difflib.get_close_matches(key_word.lower(), choices, n=1, cutoff=0.6)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    known = ", ".join(f"`{key.name}`" for key in FILTER_KEYS)
    return f"`{shown(key_word)}` is not a filter.{hint} Filters: {known}, `limit`, `from`."


def subscription_only(name: str, word: str) -> str:
    """`runs project:650`: the API has no such filter, but notices can follow one."""
    value = split_pair(word)[2]
    example = {"project": "650", "account": "748"}[name]
    if value.isascii() and value.isdigit() and value.strip("0") and whole_number(value) <= MAX_ID:
        example = value
    return (f"`{COMMAND} runs` cannot filter by {name}: the CDE API does not list runs by "
            f"{name}. Failure notices can follow one: `{COMMAND} subscribe {name}:{example}`.")


def shown(word: str, limit: int = 60) -> str:
    """A user's word as it may be echoed inside a code span: short and without backticks."""
    word = word.replace("`", "'")
    return word if len(word) <= limit else word[: limit - 1] + "…"
