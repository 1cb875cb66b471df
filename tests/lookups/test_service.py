"""Lookups against a mocked CDE API: every outcome becomes an answer, never an exception."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from pytest_httpx import HTTPXMock

from bot.cde.client import NO_WAIT_RETRY, CdeClient
from bot.logs import request_id
from bot.lookups.service import Lookups
from bot.query import ListRuns, parse
from tests.helpers.mockable import mockable

BASE = "https://cde.test"
RUN_ID = "019e16f3-bfb8-7ed8-8d26-b7d40818d146"


@pytest.fixture
async def lookups():
    async with CdeClient(BASE, SecretStr("token-123456"), transport=mockable(), retry=NO_WAIT_RETRY) as cde:
        yield Lookups(cde)


def text(message: Any) -> str:
    return json.dumps(message.blocks, ensure_ascii=False) + message.text


async def test_a_list_answer(lookups: Lookups, httpx_mock: HTTPXMock, runs_list_body: dict) -> None:
    httpx_mock.add_response(json=runs_list_body)
    answer = await lookups.answer(parse("runs"))
    assert not answer.error and RUN_ID in text(answer)


async def test_a_missing_list_points_at_the_api_url(lookups: Lookups, httpx_mock: HTTPXMock,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    httpx_mock.add_response(status_code=404, text="<html>Not Found</html>")
    answer = await lookups.answer(parse("runs site:1001"))
    assert answer.error and "CDE_API_URL" in text(answer)
    assert "CDE_API_URL" in caplog.text


async def test_a_missing_run(lookups: Lookups, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=404, json={"message": "Run not found."})
    answer = await lookups.answer(parse(f"run {RUN_ID}"))
    assert answer.error and f"Run `{RUN_ID}` was not found" in text(answer)


async def test_an_outage_gives_the_request_reference(lookups: Lookups, httpx_mock: HTTPXMock,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    httpx_mock.add_response(status_code=503, text="<html>down</html>", is_reusable=True)
    request_id.set("ref0123456")
    caplog.set_level(logging.ERROR)
    answer = await lookups.answer(parse("runs"))
    assert answer.error and "Reference: `ref0123456`" in text(answer)
    assert "ref0123456" in caplog.text and "Traceback" not in caplog.text


async def test_an_undecodable_body_is_an_answer(lookups: Lookups, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.DecodingError("bad gzip"))
    answer = await lookups.answer(parse("runs"))
    assert answer.error and "cannot read" in text(answer)


async def test_never_more_runs_than_asked_for(lookups: Lookups, httpx_mock: HTTPXMock,
                                              reference_runs: list[dict]) -> None:
    # The API's maximum page size is not documented: it may ignore `limit`.
    many = [dict(reference_runs[i % 4], id=f"019e16f3-bfb8-7ed8-8d26-{i:012d}") for i in range(30)]
    httpx_mock.add_response(json={"data": many, "metadata": {"from": 0, "limit": 30, "count": 30,
                                                             "total": 30}})
    answer = await lookups.answer(parse("runs limit:5"))
    assert len(answer.blocks) <= 50
    assert "Showing 1–5 of 30" in text(answer)
    command = parse(next(
        e["value"] for b in answer.blocks for e in b.get("elements", [])
        if e.get("action_id") == "runs_page_next"))
    assert isinstance(command, ListRuns) and command.offset == 5
