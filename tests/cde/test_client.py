"""The CDE client against pytest-httpx: every status and body shape it must handle."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from pytest_httpx import HTTPXMock

from bot.cde.client import NO_WAIT_RETRY, CdeClient, RetryPolicy
from bot.cde.errors import (
    CdeBadRequest,
    CdeConnectionError,
    CdeError,
    CdeForbidden,
    CdeNotFound,
    CdeProtocolError,
    CdeRateLimited,
    CdeServerError,
    CdeTimeout,
    CdeUnauthorized,
)
from bot.cde.models import RunFilter
from tests.helpers.fixtures import load_fixture
from tests.helpers.mockable import mockable

BASE = "https://cde.test"
TOKEN = "s3cret-cde-token-value"
RUN_ID = "019e16f3-bfb8-7ed8-8d26-b7d40818d146"


@pytest.fixture
async def client():
    async with CdeClient(BASE, SecretStr(TOKEN), transport=mockable(), retry=NO_WAIT_RETRY) as cde:
        yield cde


def runs_url(**params: Any) -> httpx.URL:
    return httpx.URL(f"{BASE}/runs", params=params)


async def test_list_runs_sends_filters_paging_and_token(client: CdeClient, httpx_mock: HTTPXMock,
                                                        runs_list_body: dict[str, Any]) -> None:
    httpx_mock.add_response(
        url=runs_url(**{"site-id": "1001", "state": "failed", "from": "0", "limit": "10"}),
        json=runs_list_body,
    )
    page = await client.list_runs(RunFilter(site_id=1001, state="failed"), offset=0, limit=10)
    request = httpx_mock.get_request()
    assert request is not None
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert [run.id for run in page.runs][2] == RUN_ID
    assert page.total == 4
    failed = page.runs[2]
    assert failed.failed and failed.exit_code == 1 and failed.site_name == "Site 2"
    assert failed.duration is not None and failed.duration.total_seconds() == 300


async def test_unknown_state_and_extra_fields_are_kept(client: CdeClient, httpx_mock: HTTPXMock,
                                                       runs_list_body: dict[str, Any]) -> None:
    runs_list_body["data"][0]["state"] = "running"
    runs_list_body["data"][0]["finished-at"] = None
    runs_list_body["data"][0]["brand-new-field"] = {"x": 1}
    httpx_mock.add_response(json=runs_list_body)
    page = await client.list_runs()
    assert page.runs[0].state == "running"
    assert page.runs[0].duration is None


async def test_all_nullable_fields_may_be_null(client: CdeClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(json={"data": [{"id": RUN_ID}], "metadata": None})
    page = await client.list_runs()
    assert page.runs[0].id == RUN_ID and page.runs[0].state is None
    assert page.total == 1  # derived from the page when metadata is missing


async def test_get_run(client: CdeClient, httpx_mock: HTTPXMock, reference_runs: list[dict]) -> None:
    httpx_mock.add_response(url=f"{BASE}/runs/{RUN_ID}", json={"message": "run", "data": reference_runs[2]})
    run = await client.get_run(RUN_ID)
    assert run.id == RUN_ID and run.state == "failed"


@pytest.mark.parametrize(
    ("status", "fixture", "error"),
    [
        (401, "runs-list-401.json", CdeUnauthorized),
        (403, "runs-list-403.json", CdeForbidden),
    ],
)
async def test_auth_errors_are_not_retried(client: CdeClient, httpx_mock: HTTPXMock, status: int,
                                           fixture: str, error: type[CdeError]) -> None:
    httpx_mock.add_response(status_code=status, json=load_fixture(fixture))
    with pytest.raises(error) as caught:
        await client.list_runs()
    assert len(httpx_mock.get_requests()) == 1
    assert TOKEN not in str(caught.value)


async def test_bad_request_carries_field_messages(client: CdeClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=400, json=load_fixture("runs-list-400.json"))
    with pytest.raises(CdeBadRequest) as caught:
        await client.list_runs()
    assert caught.value.field_errors == {"from": "This value should be either positive or zero."}
    assert len(httpx_mock.get_requests()) == 1


async def test_not_found(client: CdeClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=404, json={"message": "Run not found."})
    with pytest.raises(CdeNotFound):
        await client.get_run(RUN_ID)
    assert len(httpx_mock.get_requests()) == 1


async def test_server_errors_are_retried_then_succeed(client: CdeClient, httpx_mock: HTTPXMock,
                                                      runs_list_body: dict[str, Any]) -> None:
    httpx_mock.add_response(status_code=502, text="<html><body>Bad Gateway</body></html>",
                            headers={"Content-Type": "text/html"})
    httpx_mock.add_response(status_code=503, json={"message": "down"})
    httpx_mock.add_response(json=runs_list_body)
    page = await client.list_runs()
    assert len(page.runs) == 4
    assert len(httpx_mock.get_requests()) == 3


async def test_retries_are_bounded_by_attempts(client: CdeClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=500, text="<html>oops</html>", is_reusable=True)
    with pytest.raises(CdeServerError) as caught:
        await client.list_runs()
    assert caught.value.status == 500
    assert len(httpx_mock.get_requests()) == NO_WAIT_RETRY.attempts


async def test_rate_limit_honours_retry_after(httpx_mock: HTTPXMock, runs_list_body: dict[str, Any],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr("bot.cde.client.asyncio.sleep", fake_sleep)
    httpx_mock.add_response(status_code=429, headers={"Retry-After": "3"}, json={"message": "slow"})
    httpx_mock.add_response(json=runs_list_body)
    async with CdeClient(BASE, SecretStr(TOKEN), transport=mockable(),
                         retry=RetryPolicy(jitter=False)) as cde:
        await cde.list_runs()
    assert waits == [3.0]


async def test_rate_limit_past_the_deadline_gives_up_at_once(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=429, headers={"Retry-After": "120"}, json={})
    async with CdeClient(BASE, SecretStr(TOKEN), transport=mockable(), retry=RetryPolicy(deadline=20)) as cde:
        with pytest.raises(CdeRateLimited) as caught:
            await cde.list_runs()
    assert caught.value.retry_after == 120
    assert len(httpx_mock.get_requests()) == 1


async def test_rate_limit_with_http_date_retry_after(client: CdeClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
                            is_reusable=True)
    with pytest.raises(CdeRateLimited) as caught:
        await client.list_runs()
    assert caught.value.retry_after == 0.0  # a date in the past means "now"


async def test_rate_limit_without_retry_after(client: CdeClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=429, is_reusable=True)
    with pytest.raises(CdeRateLimited) as caught:
        await client.list_runs()
    assert caught.value.retry_after is None
    assert len(httpx_mock.get_requests()) == NO_WAIT_RETRY.attempts


@pytest.mark.parametrize(
    ("exception", "error"),
    [
        (httpx.ConnectTimeout("timed out"), CdeTimeout),
        (httpx.ReadTimeout("timed out"), CdeTimeout),
        (httpx.ConnectError("refused"), CdeConnectionError),
        (httpx.RemoteProtocolError("peer closed"), CdeConnectionError),
    ],
)
async def test_transport_failures_are_retried_and_mapped(client: CdeClient, httpx_mock: HTTPXMock,
                                                         exception: Exception, error: type) -> None:
    httpx_mock.add_exception(exception, is_reusable=True)
    with pytest.raises(error) as caught:
        await client.list_runs()
    assert isinstance(caught.value.__cause__, httpx.HTTPError)
    assert len(httpx_mock.get_requests()) == NO_WAIT_RETRY.attempts


async def test_non_json_body_is_a_protocol_error(client: CdeClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(text="<html>login</html>", headers={"Content-Type": "text/html"})
    with pytest.raises(CdeProtocolError, match="not JSON"):
        await client.list_runs()
    assert len(httpx_mock.get_requests()) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"message": "ok"},
        {"data": "nope"},
        {"data": {"id": RUN_ID}},
        [],
    ],
)
async def test_wrong_shape_is_a_protocol_error(client: CdeClient, httpx_mock: HTTPXMock, body: Any) -> None:
    httpx_mock.add_response(json=body)
    with pytest.raises(CdeProtocolError, match="unexpected answer"):
        await client.list_runs()


async def test_unexpected_status_is_a_protocol_error(client: CdeClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=302, headers={"Location": "https://login.example"})
    with pytest.raises(CdeProtocolError, match="302"):
        await client.list_runs()


async def test_iter_pages_pages_by_total_not_next(client: CdeClient, httpx_mock: HTTPXMock,
                                                  reference_runs: list[dict]) -> None:
    def page(offset: int) -> dict[str, Any]:
        data = reference_runs[offset: offset + 2]
        return {"data": data, "metadata": {"from": offset, "limit": 2, "count": len(data),
                                           "total": 4, "next": "opaque-cursor"}}

    httpx_mock.add_response(url=runs_url(state="failed", **{"from": "0", "limit": "2"}), json=page(0))
    httpx_mock.add_response(url=runs_url(state="failed", **{"from": "2", "limit": "2"}), json=page(2))
    pages = [p async for p in client.iter_pages(RunFilter(state="failed"), page_size=2)]
    assert [len(p.runs) for p in pages] == [2, 2]
    assert len(httpx_mock.get_requests()) == 2


async def test_iter_pages_stops_on_an_empty_page(client: CdeClient, httpx_mock: HTTPXMock) -> None:
    # A total that overstates what the API returns must not loop forever.
    httpx_mock.add_response(json={"data": [], "metadata": {"from": 0, "limit": 2, "count": 0, "total": 9}})
    pages = [p async for p in client.iter_pages(page_size=2)]
    assert len(pages) == 1


async def test_token_never_in_logs(client: CdeClient, httpx_mock: HTTPXMock,
                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    httpx_mock.add_response(status_code=500, json={"message": "x"}, is_reusable=True)
    with pytest.raises(CdeServerError):
        await client.list_runs()
    assert caplog.records
    assert TOKEN not in caplog.text
    assert TOKEN not in json.dumps([r.__dict__ for r in caplog.records], default=str)


async def test_undecodable_body_is_a_protocol_error(client: CdeClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.DecodingError("incorrect header check"))
    with pytest.raises(CdeProtocolError):
        await client.list_runs()
    assert len(httpx_mock.get_requests()) == 1


async def test_bad_request_with_odd_errors_shape(client: CdeClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=400, json={"message": "Bad request.", "errors": ["from"]})
    with pytest.raises(CdeBadRequest) as caught:
        await client.list_runs()
    assert caught.value.field_errors == {} and str(caught.value) == "Bad request."


async def test_each_try_gets_only_what_is_left_of_the_deadline(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), is_reusable=True)
    policy = RetryPolicy(attempts=3, deadline=4.0, backoff_base=0.0, backoff_max=0.0, jitter=False)
    async with CdeClient(BASE, SecretStr(TOKEN), transport=mockable(), retry=policy) as cde:
        with pytest.raises(CdeTimeout):
            await cde.list_runs()
    timeouts = [request.extensions["timeout"] for request in httpx_mock.get_requests()]
    assert len(timeouts) == 3
    # The configured read timeout is 10 s, but no try may wait past the 4 s deadline.
    assert all(0 < t["read"] <= 4.0 and t["connect"] <= 4.0 for t in timeouts)
