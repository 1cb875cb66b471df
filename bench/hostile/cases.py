"""The registry of cases: each is a small async function that starts what it needs in a
`World`, tries its inputs and fills in an `Observation`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.hostile.census import Observation
from bot.demo.runs import make_run

CaseFunction = Callable[[Observation, bool], Awaitable[None]]


@dataclass(frozen=True)
class Case:
    family: str
    name: str
    run: CaseFunction
    about: str


CASES: list[Case] = []


def case(family: str, name: str) -> Callable[[CaseFunction], CaseFunction]:
    """Register the decorated function as the case `family/name`; its docstring says what
    it tries."""
    def register(function: CaseFunction) -> CaseFunction:
        CASES.append(Case(family, name, function, (function.__doc__ or "").strip().splitlines()[0]))
        return function
    return register


def now() -> datetime:
    return datetime.now(UTC)


def failure(site_id: int = 1001, *, ended_ago: timedelta = timedelta(0), **fields: Any) -> dict[str, Any]:
    """A failed run that ended `ended_ago`, of a connector of its own (so it is news of its
    own, not a repeat of another's incident)."""
    took = timedelta(minutes=5)
    fields.setdefault("connector_id", str(uuid.uuid4()))
    return make_run(state="failed", site_id=site_id, started_at=now() - ended_ago - took, took=took,
                    **fields)
