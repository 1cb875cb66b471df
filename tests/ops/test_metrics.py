"""bot/metrics.py and what feeds it (CDE client observer, Slack 429 counting, polls), plus
the readiness checks behind `/readyz` and the endpoints themselves.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from pytest_httpx import HTTPXMock

from bot.cde.client import NO_WAIT_RETRY, CdeClient
from bot.cde.errors import CdeConnectionError, CdeNotFound, CdeProtocolError
from bot.config import Settings
from bot.lookups.listeners import outcome as lookup_outcome
from bot.notices.poller import PollReport
from bot.ops.http import http_app
from bot.ops.metrics import COMMAND_OUTCOMES, COMMANDS, Metrics
from bot.ops.readiness import STALE_FLOOR, Readiness, poll_check, stale_after
from bot.query import ListRuns, QueryError
from bot.server import Bot
from bot.slack.client import api_method, web_client
from bot.slack.message import Message
from bot.slack.respond import command_name
from bot.store.base import StoreError
from tests.helpers.fixtures import load_fixture
from tests.helpers.mockable import mockable
from tests.standins.slack import SlackStandIn

BASE = "https://cde.test"
RUN_ID = "019e16f3-bfb8-7ed8-8d26-b7d40818d146"
BOT_TOKEN = "xoxb-metrics-test-token-0123"


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the rendered output, by name and sorted labels."""
    text = metrics.render().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics).get((name, tuple(sorted(labels.items()))), 0.0)


# ----------------------------------------------------------------------------- Metrics


def test_each_metrics_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.command_answered("runs", "ok")
    assert value(first, "cde_bot_commands_total", command="runs", outcome="ok") == 1
    assert value(second, "cde_bot_commands_total", command="runs", outcome="ok") == 0


def test_every_command_and_outcome_series_exists_from_the_start() -> None:
    found = samples(Metrics())
    for command in COMMANDS:
        for outcome in COMMAND_OUTCOMES:
            key = ("cde_bot_commands_total", (("command", command), ("outcome", outcome)))
            assert found[key] == 0
    assert found[("cde_bot_polls_total", (("outcome", "crashed"),))] == 0
    assert found[("cde_bot_notices_posted_total", (("kind", "digest_list"),))] == 0
    assert found[("cde_bot_last_successful_poll_timestamp_seconds", ())] == 0


def test_commands_are_counted_by_outcome() -> None:
    metrics = Metrics()
    metrics.command_answered("runs", "ok")
    metrics.command_answered("runs", "ok")
    metrics.command_answered("button", "api_error")
    assert value(metrics, "cde_bot_commands_total", command="runs", outcome="ok") == 2
    assert value(metrics, "cde_bot_commands_total", command="button", outcome="api_error") == 1


@pytest.mark.parametrize(("command", "outcome"), [("deploy", "ok"), ("runs", "fine")])
def test_a_label_outside_its_set_is_a_bug(command: str, outcome: str) -> None:
    with pytest.raises(ValueError, match="unknown"):
        Metrics().command_answered(command, outcome)


def test_cde_requests_are_timed_by_endpoint_and_status_and_errors_counted_by_kind() -> None:
    metrics = Metrics()
    metrics.on_request("runs", 200, 0.2, None)
    metrics.on_request("run", 404, 0.03, "CdeNotFound")
    metrics.on_request("runs", None, 5.0, "CdeTimeout")
    assert value(metrics, "cde_bot_cde_request_seconds_count", endpoint="runs", status="200") == 1
    seconds = value(metrics, "cde_bot_cde_request_seconds_sum", endpoint="runs", status="200")
    assert seconds == pytest.approx(0.2)
    assert value(metrics, "cde_bot_cde_request_seconds_bucket", endpoint="runs", status="200", le="0.25") == 1
    assert value(metrics, "cde_bot_cde_request_seconds_count", endpoint="run", status="404") == 1
    assert value(metrics, "cde_bot_cde_request_seconds_count", endpoint="runs", status="none") == 1
    assert value(metrics, "cde_bot_cde_errors_total", kind="CdeNotFound") == 1
    assert value(metrics, "cde_bot_cde_errors_total", kind="CdeTimeout") == 1
    with pytest.raises(ValueError):
        metrics.on_request(f"runs/{RUN_ID}", 200, 0.1, None)


def test_polls_count_outcomes_notices_and_the_last_success() -> None:
    metrics = Metrics()
    metrics.poll_finished("ok", {"notice": 2, "digest_list": 1, "admin": 0}, at=1_700_000_000.0)
    metrics.poll_finished("api_error", {"admin": 1}, at=1_700_000_060.0)
    metrics.poll_finished("crashed")
    assert value(metrics, "cde_bot_polls_total", outcome="ok") == 1
    assert value(metrics, "cde_bot_polls_total", outcome="api_error") == 1
    assert value(metrics, "cde_bot_polls_total", outcome="crashed") == 1
    assert value(metrics, "cde_bot_notices_posted_total", kind="notice") == 2
    assert value(metrics, "cde_bot_notices_posted_total", kind="digest_list") == 1
    assert value(metrics, "cde_bot_notices_posted_total", kind="admin") == 1
    # A failed poll is not a success, whatever time it ended.
    assert value(metrics, "cde_bot_last_successful_poll_timestamp_seconds") == 1_700_000_000.0
    metrics.poll_finished("idle", at=1_700_000_120.0)
    assert value(metrics, "cde_bot_last_successful_poll_timestamp_seconds") == 1_700_000_120.0


def test_the_last_whole_sweep_of_the_window_is_a_gauge() -> None:
    metrics = Metrics()
    assert value(metrics, "cde_bot_window_sweep_polls") == 0  # none yet
    metrics.window_swept(11, 600.0)
    assert value(metrics, "cde_bot_window_sweep_polls") == 11
    assert value(metrics, "cde_bot_window_sweep_seconds") == 600.0


def test_slack_rate_limits_are_counted_by_method() -> None:
    metrics = Metrics()
    metrics.slack_rate_limited("chat.postMessage")
    assert value(metrics, "cde_bot_slack_rate_limited_total", method="chat.postMessage") == 1


def test_render_is_the_prometheus_text_format() -> None:
    metrics = Metrics()
    assert metrics.CONTENT_TYPE.startswith("text/plain")
    text = metrics.render().decode()
    assert "# TYPE cde_bot_commands_total counter" in text
    assert "# TYPE cde_bot_cde_request_seconds histogram" in text


def test_poll_report_counts_posts_by_kind_admin_apart() -> None:
    report = PollReport()
    for kind in ("notice", "digest_list", "digest_list", "admin"):
        report.count_post(kind)
    assert report.notices == {"notice": 1, "digest_list": 2, "admin": 1}
    assert report.posted == 3


# ----------------------------------------------------------------- command labels


@pytest.mark.parametrize(("text", "label"), [
    ("runs site:1", "runs"), ("RUN abc", "run"), ("", "help"), ("help runs", "help"),
    ("subs", "subscriptions"), ("unsubscribe all", "unsubscribe"), ("subscribe all", "subscribe"),
    ("deploy everything", "help"), ("audit 5", "audit"), ("audit x", "audit"),
])
def test_command_labels_are_bounded(text: str, label: str) -> None:
    assert command_name(text) == label


def test_outcome_of_an_answer() -> None:
    assert lookup_outcome(QueryError("no"), Message("no", error=True)) == "user_error"
    assert lookup_outcome(ListRuns(), Message("3 runs")) == "ok"
    assert lookup_outcome(ListRuns(), Message("CDE is down", error=True)) == "api_error"


# ------------------------------------------------------------------- CDE observer


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int | None, float, str | None]] = []

    def on_request(self, endpoint: str, status: int | None, seconds: float, error: str | None) -> None:
        self.calls.append((endpoint, status, seconds, error))


@pytest.fixture
async def observed() -> AsyncIterator[tuple[CdeClient, Recorder]]:
    recorder = Recorder()
    async with CdeClient(BASE, SecretStr("cde-token-abcdef"),
                         transport=mockable(), retry=NO_WAIT_RETRY, observer=recorder) as cde:
        yield cde, recorder


async def test_the_observer_hears_each_attempt_without_run_ids(
        observed: tuple[CdeClient, Recorder], httpx_mock: HTTPXMock) -> None:
    cde, recorder = observed
    httpx_mock.add_response(url=httpx.URL(f"{BASE}/runs", params={"from": "0", "limit": "10"}),
                            json=load_fixture("runs-list-200.json"))
    httpx_mock.add_response(url=f"{BASE}/runs/{RUN_ID}", status_code=404, json={"message": "Not found"})
    await cde.list_runs()
    with pytest.raises(CdeNotFound):
        await cde.get_run(RUN_ID)
    assert [(e, s, err) for e, s, _, err in recorder.calls] == [
        ("runs", 200, None), ("run", 404, "CdeNotFound"),
    ]
    assert all(seconds >= 0 for _, _, seconds, _ in recorder.calls)


async def test_the_observer_hears_every_retry_and_unreadable_answers(
        observed: tuple[CdeClient, Recorder], httpx_mock: HTTPXMock) -> None:
    cde, recorder = observed
    for _ in range(3):
        httpx_mock.add_exception(httpx.ConnectError("refused"))
    with pytest.raises(CdeConnectionError):
        await cde.list_runs()
    assert [(s, err) for _, s, _, err in recorder.calls] == [(None, "CdeConnectionError")] * 3

    recorder.calls.clear()
    httpx_mock.add_response(json={"data": "not a list"})
    with pytest.raises(CdeProtocolError):
        await cde.list_runs()
    assert [(s, err) for _, s, _, err in recorder.calls] == [(200, "CdeProtocolError")]


# ---------------------------------------------------------------- Slack 429s


def test_api_method_from_a_request_url() -> None:
    assert api_method("https://slack.com/api/chat.postMessage") == "chat.postMessage"
    assert api_method("http://127.0.0.1:9/api/auth.test?x=1") == "auth.test"


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN, "slack_signing_secret": "signing-secret-0123",
        "cde_api_token": "cde-token-0123456", "cde_api_url": "http://127.0.0.1:9",
    }
    return Settings(**(values | overrides))


async def test_each_slack_429_is_counted_then_retried() -> None:
    metrics = Metrics()
    async with SlackStandIn(bot_token=BOT_TOKEN) as slack:
        client = web_client(settings(slack_api_url=slack.base_url),
                            on_rate_limited=metrics.slack_rate_limited)
        slack.fail_next("chat.postMessage", times=2, retry_after=0)
        posted = await client.chat_postMessage(channel="C0001", text="hello")
    assert posted["ok"]
    assert value(metrics, "cde_bot_slack_rate_limited_total", method="chat.postMessage") == 2


# ------------------------------------------------------------------ readiness


def test_staleness_is_three_intervals_and_never_under_the_floor() -> None:
    assert stale_after(1) == STALE_FLOOR == 120
    assert stale_after(60) == 180
    assert stale_after(60, override=5) == 5


@pytest.mark.parametrize(("last", "ok", "detail"), [
    (None, True, "first poll pending (10s since start)"),
    (995.0, True, "last successful poll 5s ago"),
    (900.0, False, "last successful poll 100s ago (stale after 60s)"),
])
def test_poll_check(last: float | None, ok: bool, detail: str) -> None:
    check = poll_check(now=1000.0, started_at=990.0, last_success=last, stale_after=60)
    assert (check.ok, check.detail) == (ok, detail)


def test_no_first_poll_long_after_start_is_stale() -> None:
    check = poll_check(now=1000.0, started_at=900.0, last_success=None, stale_after=60)
    assert not check.ok and "no successful poll" in check.detail


class FakeStore:
    def __init__(self, answers: bool) -> None:
        self.answers = answers

    async def problem(self) -> str | None:
        return None if self.answers else "the database file /data/bot.db is gone"


async def connected() -> bool:
    return True


async def test_readiness_checks_every_part() -> None:
    readiness = Readiness(stale_after=60, started_at=time.time())
    checks = await readiness.checks(FakeStore(True))  # type: ignore[arg-type]
    assert not checks["slack"].ok and checks["store"].ok and checks["poll"].ok
    readiness.slack_connected = connected
    checks = await readiness.checks(FakeStore(False))  # type: ignore[arg-type]
    assert checks["slack"].ok and not checks["store"].ok
    assert checks["store"].detail == "the database file /data/bot.db is gone"


# ------------------------------------------------------------------ endpoints


class FakeNotifier:
    def __init__(self, *results: PollReport | Exception) -> None:
        self.results = list(results)

    async def poll_once(self) -> PollReport:
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result


@pytest.fixture
async def bot() -> AsyncIterator[Bot]:
    built = Bot.build(settings(cde_poll_stale_seconds=60))
    try:
        yield built
    finally:
        await built.aclose()


async def test_bot_poll_once_feeds_metrics_and_readiness(bot: Bot) -> None:
    ok = PollReport(outcome="ok")
    ok.count_post("notice")
    bot.poller = FakeNotifier(ok, RuntimeError("bug"), PollReport(outcome="api_error"))  # type: ignore[assignment]
    assert bot.readiness is not None and bot.readiness.last_poll_success is None
    await bot.store.open()
    await bot.poll_once()
    assert value(bot.metrics, "cde_bot_poller_leader") == 1  # the only replica leads
    success = bot.readiness.last_poll_success
    assert success is not None and abs(success - time.time()) < 5
    with pytest.raises(RuntimeError):
        await bot.poll_once()
    await bot.poll_once()
    assert bot.readiness.last_poll_success == success
    for outcome in ("ok", "crashed", "api_error"):
        assert value(bot.metrics, "cde_bot_polls_total", outcome=outcome) == 1
    assert value(bot.metrics, "cde_bot_notices_posted_total", kind="notice") == 1
    assert value(bot.metrics, "cde_bot_last_successful_poll_timestamp_seconds") == success


async def test_bot_poll_once_shows_the_last_whole_sweep(bot: Bot) -> None:
    swept = PollReport(outcome="ok", sweep_polls=11, sweep_seconds=600.0)
    bot.poller = FakeNotifier(PollReport(outcome="ok"), swept)  # type: ignore[assignment]
    await bot.store.open()
    await bot.poll_once()
    assert value(bot.metrics, "cde_bot_window_sweep_polls") == 0
    await bot.poll_once()
    assert value(bot.metrics, "cde_bot_window_sweep_polls") == 11
    assert value(bot.metrics, "cde_bot_window_sweep_seconds") == 600.0


async def test_a_poll_the_database_fails_is_a_warning_counted_not_a_crash(
        bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    await bot.store.open()
    bot.poller = FakeNotifier(StoreError("the database file /data/bot.db failed: database is locked"))  # type: ignore[assignment]
    report = await bot.poll_once()
    assert report.outcome == "store_error" and "locked" in (report.error or "")
    assert value(bot.metrics, "cde_bot_polls_total", outcome="store_error") == 1
    assert value(bot.metrics, "cde_bot_polls_total", outcome="crashed") == 0
    [record] = [r for r in caplog.records if "poll stopped" in r.getMessage()]
    assert record.levelname == "WARNING" and record.exc_info is None


async def test_readyz_and_metrics_endpoints(bot: Bot) -> None:
    await bot.store.open()
    async with TestClient(TestServer(http_app(bot))) as client:
        starting = await client.get("/readyz")
        body = await starting.json()
        assert starting.status == 503 and body["ready"] is False
        assert body["checks"]["slack"] == {"ok": False, "detail": "not serving"}
        assert body["checks"]["store"]["ok"] is True

        bot.health.ready = True
        assert bot.readiness is not None
        bot.readiness.slack_connected = connected
        ready = await client.get("/readyz")
        assert ready.status == 200 and (await ready.json())["ready"] is True

        bot.readiness.last_poll_success = time.time() - 61
        stale = await client.get("/readyz")
        body = await stale.json()
        assert stale.status == 503 and body["checks"]["poll"]["ok"] is False

        bot.metrics.command_answered("help", "ok")
        scraped = await client.get("/metrics")
        assert scraped.status == 200
        assert scraped.headers["Content-Type"].startswith("text/plain")
        text = await scraped.text()
        assert 'cde_bot_commands_total{command="help",outcome="ok"} 1.0' in text

