"""`/readyz`, `/metrics` and JSON logs of the bot served as `cde-bot serve` serves it
(in the test process), in both transports."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.demo.api import Fault, SampleCdeApi
from bot.demo.runs import make_run
from tests.helpers.bot_process import SECRETS, bot_env
from tests.helpers.events import command
from tests.helpers.sample import FAILED_RUN
from tests.helpers.served_bot import ServedBot, settings_from, stop_cleanly
from tests.helpers.waiting import until
from tests.standins.slack import SlackStandIn

OPS = "C0001"
STALE_SECONDS = 3


async def get(bot: ServedBot, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(f"{bot.url}{path}") as response:
        return response.status, await response.text()


async def readyz(bot: ServedBot) -> tuple[int, dict[str, Any]]:
    status, body = await get(bot, "/readyz")
    return status, json.loads(body)


async def scrape(bot: ServedBot) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, text = await get(bot, "/metrics")
    assert status == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric(scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


async def start_bot(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    *, socket_mode: bool, **settings: str) -> ServedBot:
    env = bot_env(slack, cde, socket_mode=socket_mode, database=tmp_path / "bot.db") | {
        "CDE_POLL_INTERVAL": "1",
        "CDE_POLL_STALE_SECONDS": str(STALE_SECONDS),
        "LOG_FORMAT": "json",
    } | settings
    bot = ServedBot(settings_from(env, monkeypatch))
    bot.start()
    try:
        await bot.wait_ready()
    except BaseException:
        await bot.stop()
        raise
    return bot


def check_json_log(bot: ServedBot) -> list[dict[str, Any]]:
    """Every line of the bot's output is one JSON object, and none holds a secret."""
    text = bot.log()
    assert text, "the bot logged nothing"
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            entry = json.loads(line)
        except ValueError:
            raise AssertionError(f"log line {number} is not JSON: {line[:200]}") from None
        assert isinstance(entry, dict)
        assert {"time", "level", "logger", "request_id", "message"} <= entry.keys(), line
        entries.append(entry)
    assert not [secret for secret in SECRETS if secret in text], "a secret appeared in the bot's log"
    return entries


async def test_http_mode_ready_metrics_stale_polls_and_json_logs(
        slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bot = await start_bot(slack, cde, tmp_path, monkeypatch, socket_mode=False)
    try:
        status, body = await readyz(bot)
        assert status == 200, body
        assert body["ready"] is True and body["degraded"] == []
        assert {name: check["ok"] for name, check in body["checks"].items()} == {
            "slack": True, "store": True, "poll": True, "coverage": True}

        # A lookup and a subscription, answered.
        _, _, url = await command(bot, slack, "runs site:1002 state:failed")
        [answer] = await slack.wait_for_response(url)
        assert FAILED_RUN in json.dumps(answer)
        await command(bot, slack, "subscribe site:1001")
        await until(lambda: len(slack.messages(OPS)) == 1, "the subscription confirmation")

        # A new failure: the notice's first post is rate limited, then goes through.
        slack.fail_next("chat.postMessage", 1, retry_after=0)
        cde.add_run(make_run(state="failed", site_id=1001))

        async def notice_counted() -> dict[Any, float] | None:
            scraped = await scrape(bot)
            return scraped if metric(scraped, "cde_bot_notices_posted_total", kind="notice") else None

        scraped = await until(notice_counted, "the notice to be counted")
        assert len(slack.messages(OPS)) == 2
        assert metric(scraped, "cde_bot_commands_total", command="runs", outcome="ok") == 1
        assert metric(scraped, "cde_bot_commands_total", command="subscribe", outcome="ok") == 1
        assert metric(scraped, "cde_bot_cde_request_seconds_count", endpoint="runs", status="200") >= 2
        assert metric(scraped, "cde_bot_polls_total", outcome="ok") >= 1
        assert metric(scraped, "cde_bot_slack_rate_limited_total", method="chat.postMessage") == 1
        last_poll = metric(scraped, "cde_bot_last_successful_poll_timestamp_seconds")
        assert abs(time.time() - last_poll) < 30

        # The CDE API goes down: polls fail, and once the last success is stale, not ready.
        cde.fail_next(*[Fault(status=503) for _ in range(1000)])

        async def not_ready() -> dict[str, Any] | None:
            status, body = await readyz(bot)
            return body if status == 503 else None

        body = await until(not_ready, "/readyz to report stale polls", timeout=STALE_SECONDS + 8)
        assert body["ready"] is False
        assert body["checks"]["poll"]["ok"] is False and "stale" in body["checks"]["poll"]["detail"]
        assert body["checks"]["slack"]["ok"] and body["checks"]["store"]["ok"]
        scraped = await scrape(bot)
        assert metric(scraped, "cde_bot_polls_total", outcome="api_error") >= 1
        assert metric(scraped, "cde_bot_cde_errors_total", kind="CdeServerError") >= 1
        assert metric(scraped, "cde_bot_cde_request_seconds_count", endpoint="runs", status="503") >= 1
        status, _ = await get(bot, "/healthz")
        assert status == 200  # alive all the same: restarting would not bring the API back

        # Back up: ready again after the next successful poll.
        cde.faults.clear()

        async def ready() -> bool:
            return (await readyz(bot))[0] == 200

        await until(ready, "/readyz to recover")
    finally:
        await stop_cleanly(bot)
    entries = check_json_log(bot)
    assert any(e["request_id"].startswith("poll-") for e in entries)
    assert any(e["message"].startswith("poll failed") for e in entries)


async def test_socket_mode_ready_and_metrics(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    bot = await start_bot(slack, cde, tmp_path, monkeypatch, socket_mode=True)
    try:
        await slack.wait_connected()
        status, body = await readyz(bot)
        assert status == 200, body
        assert body["checks"]["slack"] == {"ok": True, "detail": "connected"}
        _, url = await slack.send_slash_command("runs site:1002 state:failed")
        await slack.wait_for_response(url)
        result, _ = await slack.send_slash_command("bogus")
        assert result.ack_payload is not None

        async def counted() -> dict[Any, float] | None:
            scraped = await scrape(bot)
            done = metric(scraped, "cde_bot_commands_total", command="runs", outcome="ok")
            return scraped if done and metric(scraped, "cde_bot_polls_total", outcome="idle") else None

        scraped = await until(counted, "the command and a poll to be counted")
        assert metric(scraped, "cde_bot_commands_total", command="help", outcome="user_error") == 1
        # The lookup's request, and one 1-run request per idle poll.
        idle_polls = metric(scraped, "cde_bot_polls_total", outcome="idle")
        answered = metric(scraped, "cde_bot_cde_request_seconds_count", endpoint="runs", status="200")
        assert answered >= 1 + idle_polls
        assert len([r for r in cde.requests_to("/runs") if r.query.get("site-id") == "1002"]) == 1
    finally:
        await stop_cleanly(bot)
    check_json_log(bot)



async def test_scans_cut_short_are_shown_by_readyz_and_metrics_yet_the_bot_stays_ready(
        slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for second in range(150):
        started = datetime.now(UTC) - timedelta(minutes=10, seconds=second)
        cde.add_run(make_run(state="failed", site_id=1001, started_at=started))
    bot = await start_bot(slack, cde, tmp_path, monkeypatch, socket_mode=False,
                          CDE_SCAN_MAX_PAGES="1", SLACK_ADMIN_CHANNEL="C0ADMIN")
    try:
        await command(bot, slack, "subscribe site:1001")
        await until(lambda: slack.messages("C0ADMIN"), "the admins to be told")

        async def degraded() -> tuple[int, dict[str, Any]] | None:
            status, body = await readyz(bot)
            return (status, body) if body["degraded"] == ["coverage"] else None

        status, body = await until(degraded, "/readyz to show scans cut short")
        # Ready or not by the other checks alone (a loaded machine may make polls stale).
        others = all(check["ok"] for name, check in body["checks"].items() if name != "coverage")
        assert body["ready"] is others and status == (200 if others else 503)
        assert body["checks"]["coverage"]["ok"] is False
        assert "CDE_SCAN_MAX_PAGES" in body["checks"]["coverage"]["detail"]
        async def partial_poll_counted() -> dict[Any, float] | None:
            scraped = await scrape(bot)
            return scraped if metric(scraped, "cde_bot_polls_total", outcome="partial") else None

        # The admins hear of it mid-poll; the poll is counted when it ends.
        scraped = await until(partial_poll_counted, "the partial poll to be counted")
        assert metric(scraped, "cde_bot_scans_cut_short") == 1
    finally:
        await stop_cleanly(bot)
    assert [m["text"] for m in slack.messages("C0ADMIN")] == [
        "Some failures may not be told: CDE scans stop short of the window"]


@pytest.mark.parametrize("damage", ["deleted", "overwritten"])
async def test_a_database_file_damaged_under_the_running_bot_is_not_ready(
        slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        damage: str) -> None:
    bot = await start_bot(slack, cde, tmp_path, monkeypatch, socket_mode=False)
    database = tmp_path / "bot.db"
    try:
        status, body = await readyz(bot)
        assert status == 200 and body["checks"]["store"] == {"ok": True, "detail": "reads and writes"}
        if damage == "deleted":
            database.unlink()
        else:
            with database.open("r+b") as file:
                file.write(b"not a database" * 100)
        status, body = await readyz(bot)
        assert status == 503 and body["ready"] is False
        store = body["checks"]["store"]
        assert store["ok"] is False
        expected = "is gone" if damage == "deleted" else "is not an SQLite database any more"
        assert f"the database file {database.resolve()} {expected}" in store["detail"]
        status, _ = await get(bot, "/healthz")
        assert status == 200
    finally:
        await bot.stop()


async def test_a_command_on_a_locked_database_is_acked_and_told_why(
        slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bot = await start_bot(slack, cde, tmp_path, monkeypatch, socket_mode=False)
    other = sqlite3.connect(tmp_path / "bot.db", isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        status, body, url = await command(bot, slack, "subscribe site:1001")
        assert (status, body) == (200, "")  # the ack does not wait for the store
        # The store gives up after its busy timeout (5 s), behind a poll that waits as long.
        [answer] = await slack.wait_for_response(url, timeout=30)
        assert "The bot's database is not answering, so nothing was done" in json.dumps(answer)
        other.execute("ROLLBACK")
        _, _, again = await command(bot, slack, "subscribe site:1001")
        await until(lambda: len(slack.messages(OPS)) == 1, "the subscription, once the lock is gone")
        assert slack.responses(again) == []
    finally:
        other.close()
        await bot.stop()
