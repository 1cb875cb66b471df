"""How one run is shown in Slack, in lookup answers and failure notices alike: its state,
names and connector, deep links into the CDE web UI, credentials masked, and buttons that
run a lookup about it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from bot.cde.models import FAILED, FINISHED, Run, RunFilter
from bot.query import ListRuns, ShowRun, parse
from bot.slack.blocks import MAX_BUTTON_VALUE, Element, button
from bot.slack.mrkdwn import code, escape

LinkBuilder = Callable[[Run], str | None]


def lookup_button(text: str, action_id: str, command_text: str, **kwargs: Any) -> Element | None:
    """A button that runs a lookup when clicked, or None when the command it would carry
    does not parse (ids from the API that are not UUIDs) or does not fit in a value.
    """
    if len(command_text) > MAX_BUTTON_VALUE or not isinstance(parse(command_text), ListRuns | ShowRun):
        return None
    return button(text, action_id, value=command_text, **kwargs)


def recent_runs_button(run: Run, text: str, action_id: str) -> Element | None:
    """A button listing this connector's latest runs on this site, when both are known."""
    if not run.connector_id or run.site_id is None:
        return None
    recent = ListRuns(RunFilter(connector_id=run.connector_id, site_id=run.site_id))
    return lookup_button(text, action_id, recent.to_text())



# Keys and command-line options whose values are credentials; shown masked, since a run's
# details can be shared in a channel.
_SECRET_NAME = re.compile(r"(?i)(pass(word|wd)?|secret|token|api[-_]?key|credential|authorization)")
_SECRET_OPTION = re.compile(
    r"(?i)((?:--?|\b)[\w.-]*(?:pass(?:word|wd)?|secret|token|api[-_]?key|credential)[\w.-]*)"
    r"(\s*[=:]\s*|\s+)(\"[^\"]*\"|'[^']*'|\S+)"
)
MASK = "•••"


def mask_secrets(value: Any) -> Any:
    """`value` with anything that looks like a credential replaced by a mask."""
    if isinstance(value, dict):
        return {k: MASK if _SECRET_NAME.search(str(k)) and v not in (None, "") else mask_secrets(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(item) for item in value]
    if isinstance(value, str):
        return _SECRET_OPTION.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", value)
    return value


# ---------------------------------------------------------------------------------------
# Pieces of a run


def state_marker(state: str | None) -> str:
    """An emoji and the state word; unknown states are shown as they are, neutrally."""
    if state == FAILED:
        return ":red_circle: *failed*"
    if state == FINISHED:
        return ":large_green_circle: finished"
    if state is None:
        return ":white_circle: _no state_"
    return f":white_circle: {escape(state)}"


def named(name: str | None, ident: int | str | None) -> str:
    """`Site 1 (1001)`, escaped; a dash when neither is known."""
    if name and ident is not None:
        return f"{escape(name)} ({escape(ident)})"
    if name:
        return escape(name)
    if ident is not None:
        return f"({escape(ident)})"
    return "—"


def connector_text(run: Run) -> str:
    connector = code(run.connector_id) if run.connector_id else "unknown connector"
    version = f" v{escape(run.connector_version)}" if run.connector_version else ""
    return connector + version


def web_links(template: str | None) -> LinkBuilder:
    """Deep links into the CDE web UI from a configured template, or none."""

    def build(run: Run) -> str | None:
        if template is None:
            return None
        values = {
            "run_id": run.id, "site_id": run.site_id, "connector_id": run.connector_id,
            "process_id": run.process_id, "project_id": run.project_id,
            "account_id": run.account_id,
        }
        return template.format(**{k: quote(str(v or ""), safe="") for k, v in values.items()})

    return build


def no_links(run: Run) -> None:
    return None


