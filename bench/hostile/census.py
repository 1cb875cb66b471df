"""The census's arithmetic: what one case measured, how a family adds up, the table and
the JSON. Pure: the cases do the I/O, this only counts.

A case reports what it tried and what it saw; the verdicts are derived here, the same way
for every case: a notice expected and never posted is lost, one posted more than once is
duplicated (each extra post counts), a configured secret found in anything that left the
bot is leaked, a forged request the bot acted on is accepted, an exception that escaped (or
a 5xx with a traceback) is a crash. A case survives when none of these happened and every
check of its own held.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

# A case's status: it ran and held, it ran and missed, it could not run on this version
# (a setting it exercises does not exist yet), or the case itself crashed.
SURVIVED, MISSED, NOT_AVAILABLE, CRASHED = "survived", "missed", "not available", "crashed"


@dataclass
class Observation:
    """What one case tried and saw, filled in by the case as it goes."""

    inputs: int = 0
    # Notices that must be posted exactly once, by what they tell (a run id, say).
    expected: list[str] = field(default_factory=list)
    # Notices that may be posted at most once (refusing them is fine, repeating them is not).
    at_most_once: list[str] = field(default_factory=list)
    # What was posted: one entry per post, by what it tells.
    posted: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)  # where a secret was found
    forged_accepted: int = 0
    crashes: list[str] = field(default_factory=list)  # what crashed (a 5xx, a traceback)
    failures: list[str] = field(default_factory=list)  # the case's own checks that failed
    unavailable: str | None = None  # why the case cannot run on this version
    # Repeats the bot documents for this fault (one post per crash without the history
    # scopes): counted as duplicated all the same, but within them the case survives.
    repeats_allowed: int = 0

    def tried(self, count: int = 1) -> None:
        self.inputs += count

    def check(self, holds: bool, what: str) -> bool:
        """Record `what` as a failed check unless it `holds`; returns `holds`."""
        if not holds:
            self.failures.append(what)
        return holds


@dataclass(frozen=True)
class CaseResult:
    """One case's verdict, as the table and the JSON show it."""

    family: str
    name: str
    status: str
    inputs: int
    expected: int
    lost: int
    duplicated: int
    leaked: int
    forged_accepted: int
    crashed: int
    seconds: float
    reasons: tuple[str, ...] = ()


def lost_and_duplicated(expected: Iterable[str], at_most_once: Iterable[str],
                        posted: Iterable[str]) -> tuple[list[str], list[str]]:
    """The expected notices never posted, and every extra post of a notice (expected or
    only allowed) beyond its first, each named once per extra post.
    """
    counts = Counter(posted)
    lost = [item for item in dict.fromkeys(expected) if counts[item] == 0]
    watched = dict.fromkeys([*expected, *at_most_once])
    duplicated = [item for item in watched for _ in range(counts[item] - 1)]
    return lost, duplicated


def verdict(family: str, name: str, seen: Observation, seconds: float) -> CaseResult:
    """The result of a case that ran to its end (or said it could not run)."""
    if seen.unavailable is not None:
        return CaseResult(family, name, NOT_AVAILABLE, seen.inputs, 0, 0, 0, 0, 0, 0, seconds,
                          (seen.unavailable,))
    lost, duplicated = lost_and_duplicated(seen.expected, seen.at_most_once, seen.posted)
    reasons = [
        *([f"lost {len(lost)}: {_some(lost)}"] if lost else []),
        *([f"posted again {len(duplicated)}: {_some(duplicated)}"]
          if len(duplicated) > seen.repeats_allowed else []),
        *(f"secret in {where}" for where in dict.fromkeys(seen.leaks)),
        *([f"{seen.forged_accepted} forged request(s) accepted"] if seen.forged_accepted else []),
        *dict.fromkeys(seen.crashes),
        *(f"not so: {what}" for what in seen.failures),
    ]
    status = CRASHED if seen.crashes else MISSED if reasons else SURVIVED
    return CaseResult(family, name, status, seen.inputs, len(dict.fromkeys(seen.expected)),
                      len(lost), len(duplicated), len(seen.leaks), seen.forged_accepted,
                      len(dict.fromkeys(seen.crashes)), seconds, tuple(reasons))


def _some(items: Sequence[str], shown: int = 3) -> str:
    """The first few of `items`, and how many more there are."""
    unique = list(dict.fromkeys(items))
    more = f" and {len(unique) - shown} more" if len(unique) > shown else ""
    return ", ".join(unique[:shown]) + more


def crashed(family: str, name: str, seen: Observation, error: BaseException, seconds: float) -> CaseResult:
    """The result of a case that raised: a crash, with what was counted until then."""
    reason = f"{type(error).__name__}: {error}".strip().splitlines()[0][:300]
    partial = verdict(family, name, seen, seconds)
    return CaseResult(family, name, CRASHED, partial.inputs, partial.expected, partial.lost,
                      partial.duplicated, partial.leaked, partial.forged_accepted,
                      partial.crashed + 1, seconds, (*partial.reasons, f"case raised {reason}"))


@dataclass(frozen=True)
class FamilyTotal:
    """One row of the table: a family's cases added up."""

    family: str
    cases: int
    inputs: int
    survived: int
    lost: int
    duplicated: int
    leaked: int
    forged_accepted: int
    crashed: int
    not_available: int
    misses: tuple[str, ...]


def totals(results: Sequence[CaseResult]) -> list[FamilyTotal]:
    """A row per family, in the order the families first appear, and one for all of them."""
    families = list(dict.fromkeys(r.family for r in results))
    rows = [_total(family, [r for r in results if r.family == family]) for family in families]
    if results:
        rows.append(_total("all", list(results)))
    return rows


def _total(family: str, results: list[CaseResult]) -> FamilyTotal:
    return FamilyTotal(
        family=family,
        cases=len(results),
        inputs=sum(r.inputs for r in results),
        survived=sum(r.status == SURVIVED for r in results),
        lost=sum(r.lost for r in results),
        duplicated=sum(r.duplicated for r in results),
        leaked=sum(r.leaked for r in results),
        forged_accepted=sum(r.forged_accepted for r in results),
        crashed=sum(r.status == CRASHED for r in results),
        not_available=sum(r.status == NOT_AVAILABLE for r in results),
        misses=tuple(r.name for r in results if r.status in (MISSED, CRASHED)),
    )


COLUMNS = ("family", "cases", "inputs", "survived", "lost", "dup", "leaked", "forged", "crashed", "n/a")


def table(rows: Sequence[FamilyTotal]) -> str:
    """The census as a Markdown table (it reads as plain text too)."""
    lines = ["| " + " | ".join((*COLUMNS, "misses")) + " |",
             "|" + "|".join("---" for _ in range(len(COLUMNS) + 1)) + "|"]
    for row in rows:
        cells = (row.family, row.cases, row.inputs, row.survived, row.lost, row.duplicated,
                 row.leaked, row.forged_accepted, row.crashed, row.not_available)
        misses = ", ".join(row.misses) if row.family != "all" else f"{len(row.misses)} case(s)"
        lines.append("| " + " | ".join(str(cell) for cell in cells) + f" | {misses or '-'} |")
    return "\n".join(lines)


def details(results: Sequence[CaseResult]) -> str:
    """One line per case that did not survive, with its reasons."""
    lines = []
    for result in results:
        if result.status == SURVIVED:
            continue
        lines.append(f"- {result.family}/{result.name} ({result.status}): " + "; ".join(result.reasons))
    return "\n".join(lines)


def as_json(results: Sequence[CaseResult], *, quick: bool, commit: str | None) -> str:
    """The figures as JSON: the families' totals and every case."""
    return json.dumps({
        "command": "python -m bench.hostile" + (" --quick" if quick else ""),
        "commit": commit,
        "totals": [asdict(row) for row in totals(results)],
        "cases": [asdict(result) for result in results],
    }, indent=2)
