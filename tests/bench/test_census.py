"""The fault census's own arithmetic (bench/hostile/census.py): what counts as lost, as
told twice, as a crash, and how a family adds up. The census itself is a benchmark
(`python -m bench.hostile`), not part of the suite."""

from __future__ import annotations

import asyncio
import json

from bench.hostile.__main__ import run_case
from bench.hostile.cases import Case
from bench.hostile.census import (
    CRASHED,
    MISSED,
    NOT_AVAILABLE,
    SURVIVED,
    Observation,
    as_json,
    crashed,
    lost_and_duplicated,
    table,
    totals,
    verdict,
)


def test_a_notice_never_posted_is_lost_and_each_extra_post_is_a_duplicate() -> None:
    lost, duplicated = lost_and_duplicated(["a", "b", "c"], [], ["a", "c", "c", "c", "x"])
    assert lost == ["b"]
    assert duplicated == ["c", "c"]


def test_a_notice_allowed_at_most_once_is_never_lost_but_may_be_duplicated() -> None:
    assert lost_and_duplicated([], ["huge"], []) == ([], [])
    assert lost_and_duplicated([], ["huge"], ["huge", "huge"]) == ([], ["huge"])


def test_a_notice_expected_twice_is_counted_once() -> None:
    assert lost_and_duplicated(["a", "a"], ["a"], ["a", "a"]) == ([], ["a"])


def test_a_case_survives_only_when_nothing_went_wrong() -> None:
    seen = Observation(inputs=2, expected=["a"], posted=["a"])
    assert verdict("f", "ok", seen, 0.1).status == SURVIVED
    for spoilt in (Observation(expected=["a"]), Observation(leaks=["the log"]),
                   Observation(forged_accepted=1), Observation(failures=["readyz said 200"])):
        result = verdict("f", "bad", spoilt, 0.1)
        assert result.status == MISSED and result.reasons


def test_a_crash_outranks_a_miss_and_repeats_of_one_crash_count_once() -> None:
    seen = Observation(expected=["a"], crashes=["a poll raised X", "a poll raised X"])
    result = verdict("f", "c", seen, 0.1)
    assert (result.status, result.crashed, result.lost) == (CRASHED, 1, 1)


def test_documented_repeats_are_counted_but_do_not_spoil_the_case() -> None:
    within = verdict("f", "w", Observation(expected=["a"], posted=["a", "a"], repeats_allowed=1), 0.0)
    beyond = verdict("f", "b", Observation(expected=["a"], posted=["a", "a", "a"], repeats_allowed=1), 0.0)
    assert (within.status, within.duplicated) == (SURVIVED, 1)
    assert (beyond.status, beyond.duplicated) == (MISSED, 2)


def test_a_case_that_raised_keeps_what_it_counted_and_says_why() -> None:
    seen = Observation(inputs=3, expected=["a", "b"], posted=["a"])
    result = crashed("f", "boom", seen, ValueError("bad\nsecond line"), 0.1)
    assert (result.status, result.inputs, result.lost, result.crashed) == (CRASHED, 3, 1, 1)
    assert result.reasons[-1] == "case raised ValueError: bad"


def test_a_setting_that_does_not_exist_yet_is_not_available_not_a_miss() -> None:
    result = verdict("access", "admins", Observation(unavailable="CDE_ADMINS is not a setting"), 0.0)
    assert result.status == NOT_AVAILABLE
    [family, everything] = totals([result])
    assert (family.not_available, family.survived, family.misses) == (1, 0, ())
    assert everything.family == "all"


def test_families_add_up_in_order_with_a_total_row() -> None:
    results = [
        verdict("cde", "one", Observation(inputs=2, expected=["a", "b"], posted=["a"]), 0.0),
        verdict("slack", "two", Observation(inputs=1, expected=["c"], posted=["c", "c"]), 0.0),
        verdict("cde", "three", Observation(inputs=4, leaks=["the log", "an HTTP answer"]), 0.0),
        verdict("slack", "four", Observation(inputs=1, forged_accepted=2), 0.0),
    ]
    cde, slack, everything = totals(results)
    assert (cde.family, cde.cases, cde.inputs, cde.survived, cde.lost, cde.leaked, cde.misses) == (
        "cde", 2, 6, 0, 1, 2, ("one", "three"))
    assert (slack.duplicated, slack.forged_accepted, slack.misses) == (1, 2, ("two", "four"))
    assert (everything.cases, everything.inputs, everything.lost, everything.duplicated) == (4, 8, 1, 1)
    lines = table(totals(results)).splitlines()
    assert len(lines) == 2 + 3
    assert lines[2].startswith("| cde | 2 | 6 | 0 | 1 | 0 | 2 | 0 | 0 | 0 | one, three |")
    assert lines[-1].endswith("| 4 case(s) |")


def test_the_json_holds_the_totals_and_every_case() -> None:
    results = [verdict("cde", "one", Observation(inputs=1, expected=["a"], posted=["a"]), 0.0)]
    figures = json.loads(as_json(results, quick=True, commit="abc1234"))
    assert figures["command"] == "python -m bench.hostile --quick"
    assert [row["family"] for row in figures["totals"]] == ["cde", "all"]
    assert figures["cases"][0]["status"] == SURVIVED


def test_the_runner_reports_a_case_that_raises_as_crashed_and_goes_on() -> None:
    async def explodes(seen: Observation, quick: bool) -> None:
        seen.tried(2)
        raise RuntimeError("the stand-in fell over")

    result = asyncio.run(run_case(Case("f", "explodes", explodes, ""), quick=True))
    assert (result.status, result.inputs) == (CRASHED, 2)
    assert "RuntimeError: the stand-in fell over" in result.reasons[-1]
