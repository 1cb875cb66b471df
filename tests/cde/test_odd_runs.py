"""Odd runs from the CDE API: each read as far as it fits, never hiding the others."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr
from pytest_httpx import HTTPXMock

from bot.cde.client import NO_WAIT_RETRY, CdeClient
from bot.cde.errors import CdeProtocolError
from bot.cde.models import MAX_ID, Run, Unreadable, read_run
from bot.demo.runs import make_run
from tests.helpers.mockable import mockable

BASE = "https://cde.test"
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def raw(**fields: Any) -> dict[str, Any]:
    body = make_run(state="failed", started_at=AT, created_at=AT)
    return {**body, **fields}


# Each: a field the API sent oddly, and what the run shows for it.
ODD_FIELDS = [
    ("site-name", 12345, "site_name", "12345"),
    ("connector-version", 2.0, "connector_version", "2.0"),
    ("exit-code", "ERR", "exit_code", None),
    ("exit-code", 1.5, "exit_code", None),
    ("exit-code", True, "exit_code", None),
    ("started-at", "yesterday", "started_at", None),
    ("finished-at", "2026-13-45T99:00:00Z", "finished_at", None),
    ("site-name", ["a", "b"], "site_name", None),
    ("site-id", 1e20, "site_id", None),
    ("site-id", 2**63, "site_id", None),
    ("site-id", -5, "site_id", None),
    ("site-id", {"id": 1}, "site_id", None),
    ("project-id", "many", "project_id", None),
    ("account-name", {"x": 1}, "account_name", None),
    ("state", ["failed"], "state", None),
]


@pytest.mark.parametrize(("alias", "value", "field", "shown"), ODD_FIELDS)
def test_an_odd_field_is_left_empty_and_named(alias: str, value: Any, field: str, shown: Any) -> None:
    run = read_run(raw(**{alias: value}))
    assert isinstance(run, Run)
    assert getattr(run, field) == shown
    if shown is None:
        assert [p.split(":")[0] for p in run.problems] == [alias]
    # The rest of the run is intact.
    assert run.created_at == AT and run.connector_id is not None


def test_the_largest_64_bit_site_id_fits() -> None:
    run = read_run(raw(**{"site-id": MAX_ID}))
    assert isinstance(run, Run) and run.site_id == MAX_ID and not run.problems


def test_a_float_with_no_fraction_is_a_whole_number() -> None:
    run = read_run(raw(**{"site-id": 1001.0}))
    assert isinstance(run, Run) and run.site_id == 1001 and not run.problems


@pytest.mark.parametrize("when", ["2026-03-01T12:00:00", "2026-03-01 12:00:00"])
def test_a_time_without_offset_is_utc(when: str) -> None:
    run = read_run(raw(**{"created-at": when, "started-at": when}))
    assert isinstance(run, Run) and run.created_at == AT and run.started_at == AT
    assert not run.problems


@pytest.mark.parametrize("run_id", [None, 12.5, 42, ["x"], "", "   ", "a b", "x" * 500, True])
def test_a_run_without_a_usable_id_is_unreadable(run_id: Any) -> None:
    read = read_run(raw(id=run_id))
    assert isinstance(read, Unreadable)
    assert read.reason.startswith("id:")


@pytest.mark.parametrize("item", [None, 5, "run", ["a"]])
def test_an_item_that_is_not_an_object_is_unreadable(item: Any) -> None:
    assert isinstance(read_run(item), Unreadable)


def test_a_run_with_problems_survives_the_round_trip_through_the_store() -> None:
    run = read_run(raw(**{"exit-code": "ERR"}))
    assert isinstance(run, Run)
    again = Run.model_validate(run.model_dump(mode="json", by_alias=True))
    assert again == run


async def test_one_odd_run_does_not_hide_the_others_and_is_logged_once(
        httpx_mock: HTTPXMock, caplog: pytest.LogCaptureFixture) -> None:
    good = [raw(id=f"0195-good-{i}") for i in range(3)]
    odd = raw(id="0195-odd", **{"exit-code": "ERR", "site-name": ["x"]})
    listing = [good[0], odd, {"state": "failed"}, 17, good[1], good[2]]
    for _ in range(2):
        httpx_mock.add_response(json={"data": listing, "metadata": {"from": 0, "limit": 10,
                                                                    "total": len(listing)}})
    caplog.set_level(logging.WARNING, "bot.cde.client")
    async with CdeClient(BASE, SecretStr("t0ken-value-123"),
                         transport=mockable(), retry=NO_WAIT_RETRY) as cde:
        first = await cde.list_runs(limit=10)
        await cde.list_runs(limit=10)
    assert [run.id for run in first.runs] == ["0195-good-0", "0195-odd", "0195-good-1", "0195-good-2"]
    assert first.size == 6 and len(first.unreadable) == 2
    assert first.runs[1].exit_code is None and first.runs[1].site_name is None
    lines = [r.getMessage() for r in caplog.records if "cannot fully read" in r.getMessage()]
    assert len(lines) == 3  # the odd run and two unreadable items, each once in two reads
    assert any("0195-odd" in line and "exit-code" in line and "site-name" in line for line in lines)


async def test_an_odd_run_by_id_is_shown_as_far_as_it_fits(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(json={"message": "run", "data": raw(id="0195-odd", **{"site-id": 1e20})})
    async with CdeClient(BASE, SecretStr("t0ken-value-123"),
                         transport=mockable(), retry=NO_WAIT_RETRY) as cde:
        run = await cde.get_run("0195-odd")
    assert run.site_id is None and run.problems and "64 bits" in run.problems[0]


async def test_a_run_by_id_without_an_id_is_a_protocol_error(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(json={"message": "run", "data": raw(id=None)})
    async with CdeClient(BASE, SecretStr("t0ken-value-123"),
                         transport=mockable(), retry=NO_WAIT_RETRY) as cde:
        with pytest.raises(CdeProtocolError, match="id"):
            await cde.get_run("0195-odd")
