"""bot/ops/check.py: every check against real stand-ins on loopback (the Slack stand-in and the
sample CDE API), passing and failing one at a time, and never printing a secret.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.cde.client import RetryPolicy
from bot.config import ConfigError, Settings
from bot.demo.api import Fault, SampleCdeApi, reference_runs
from bot.logs import REDACTED
from bot.ops import check
from bot.ops.check import CheckResult, format_results, main, run_checks
from bot.store.sql import state_table, store_from_url
from tests.standins.slack import SlackStandIn

BOT_TOKEN = "xoxb-unit-check-bot-secret-0001"
APP_TOKEN = "xapp-unit-check-app-secret-0001"
SIGNING_SECRET = "unit-check-signing-secret-0001"
CDE_TOKEN = "cde-unit-check-secret-0001"
DB_PASSWORD = "db-unit-check-password-0001"
SECRETS = (BOT_TOKEN, APP_TOKEN, SIGNING_SECRET, CDE_TOKEN, DB_PASSWORD)

NAMES = ["Slack bot token", "Slack transport", "CDE API", "Store"]


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn(bot_token=BOT_TOKEN, app_token=APP_TOKEN,
                            signing_secret=SIGNING_SECRET) as standin:
        yield standin


@pytest.fixture
async def cde() -> AsyncIterator[SampleCdeApi]:
    async with SampleCdeApi(reference_runs(), token=CDE_TOKEN) as api:
        yield api




def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings_for(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path, *, socket_mode: bool = True,
                 **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_api_url": slack.base_url,
        "cde_api_url": cde.url,
        "cde_api_token": CDE_TOKEN,
        "database_url": f"sqlite+aiosqlite:///{tmp_path}/check.db",
    }
    if "database_url" not in overrides:
        # `check` opens a database, it never creates one: the bot has run here before.
        (tmp_path / "check.db").touch()
    if socket_mode:
        values["slack_app_token"] = APP_TOKEN
    else:
        values["slack_signing_secret"] = SIGNING_SECRET
    values |= overrides
    return Settings(_env_file=None, **values)


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {result.name: result for result in results}


def assert_no_secret(text: str) -> None:
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"a secret appeared in the output:\n{text}"


async def checked(settings: Settings) -> dict[str, CheckResult]:
    results = await run_checks(settings)
    assert [r.name for r in results][:4] == NAMES
    assert_no_secret(format_results(results, color=False))
    assert_no_secret(format_results(results, color=True))
    return by_name(results)


def only_failure(results: dict[str, CheckResult], name: str) -> CheckResult:
    failed = [r.name for r in results.values() if not r.ok]
    assert failed == [name], {r.name: r.detail for r in results.values()}
    return results[name]


# -- format_results --------------------------------------------------------------------------


def test_format_results_one_line_per_check() -> None:
    results = [
        CheckResult("Slack bot token", True, "workspace Test as @cde-bot", None),
        CheckResult("CDE API", False, "the token was rejected (401)", "set a valid CDE_API_TOKEN"),
        CheckResult("Admin channel", True, "SLACK_ADMIN_CHANNEL is C1; not verified", None, skipped=True),
    ]
    assert format_results(results, color=False).splitlines() == [
        "✓ Slack bot token — workspace Test as @cde-bot",
        "✗ CDE API — the token was rejected (401). Fix: set a valid CDE_API_TOKEN",
        "– Admin channel — SLACK_ADMIN_CHANNEL is C1; not verified",
    ]


def test_format_results_does_not_double_a_full_stop_before_the_fix() -> None:
    line = format_results([CheckResult("Store", False, "cannot open it.", "do this")], color=False)
    assert line == "✗ Store — cannot open it. Fix: do this"


def test_format_results_colours_only_when_asked() -> None:
    results = [CheckResult("A", True, "fine", None), CheckResult("B", False, "broken", "mend it")]
    plain = format_results(results, color=False)
    coloured = format_results(results, color=True)
    assert "\033[" not in plain
    assert "\033[32m✓" in coloured and "\033[31m✗" in coloured
    assert "mend it" in coloured


def test_format_results_falls_back_to_ascii() -> None:
    results = [CheckResult("A", True, "fine", None), CheckResult("B", False, "broken", "mend it")]
    text = format_results(results, color=False, unicode=False)
    assert text.splitlines() == ["OK A - fine", "FAIL B - broken. Fix: mend it"]
    text.encode("ascii")


# -- everything passes -----------------------------------------------------------------------


async def test_all_checks_pass_in_socket_mode(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> None:
    results = await checked(settings_for(slack, cde, tmp_path))
    assert all(r.ok and not r.skipped for r in results.values())
    assert results["Slack bot token"].detail == "workspace Test as @cde-bot"
    assert results["Slack transport"].detail == "Socket Mode: app-level token accepted"
    assert results["CDE API"].detail == f"reachable at {cde.url}, token accepted (4 runs visible)"
    assert results["Store"].detail == f"writable (sqlite+aiosqlite:///{tmp_path / 'check.db'})"
    # One 1-item request; the checks' own state value is gone again.
    [request] = cde.requests_to("/runs")
    assert request.query["limit"] == "1"
    assert len(slack.calls_to("apps.connections.open", ok=True)) == 1
    assert len(slack.calls_to("auth.test", ok=True)) == 1


async def test_the_store_check_leaves_no_state_behind(slack: SlackStandIn, cde: SampleCdeApi,
                                                      tmp_path: Path) -> None:
    settings = settings_for(slack, cde, tmp_path)
    assert (await checked(settings))["Store"].ok
    store = store_from_url(settings.database_url)
    await store.open()
    try:
        async with store._transaction(write=False) as conn:
            rows = (await conn.execute(select(state_table.c.key))).all()
        assert [key for (key,) in rows if key.startswith(check.STATE_KEY_PREFIX)] == []
    finally:
        await store.close()


async def test_all_checks_pass_in_http_mode(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> None:
    results = await checked(settings_for(slack, cde, tmp_path, socket_mode=False, port=8080))
    assert all(r.ok for r in results.values())
    transport = results["Slack transport"].detail
    assert transport.startswith("HTTP mode: signing secret set")
    assert "only a request from Slack can verify it" in transport
    assert "https://<host>/slack/events" in transport and "PORT 8080" in transport
    assert slack.calls_to("apps.connections.open") == []


async def test_an_admin_channel_is_reported_but_not_verified(slack: SlackStandIn, cde: SampleCdeApi,
                                                             tmp_path: Path) -> None:
    results = await run_checks(settings_for(slack, cde, tmp_path, slack_admin_channel="C0123456789"))
    admin = by_name(results)["Admin channel"]
    assert admin.ok and admin.skipped
    assert "C0123456789" in admin.detail and "not verified" in admin.detail
    assert check.all_ok(results)
    assert slack.calls_to("chat.postMessage") == []


async def test_no_admin_channel_line_when_none_is_set(slack: SlackStandIn, cde: SampleCdeApi,
                                                      tmp_path: Path) -> None:
    results = await run_checks(settings_for(slack, cde, tmp_path))
    assert [r.name for r in results] == NAMES


# -- Slack -----------------------------------------------------------------------------------


async def test_a_bad_bot_token(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> None:
    results = await checked(settings_for(slack, cde, tmp_path, slack_bot_token="xoxb-revoked-00000"))
    failed = only_failure(results, "Slack bot token")
    assert failed.detail == "Slack rejected SLACK_BOT_TOKEN (invalid_auth)"
    assert failed.fix is not None and "Bot User OAuth Token" in failed.fix and "SLACK_BOT_TOKEN" in failed.fix


async def test_a_revoked_bot_token(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> None:
    slack.fail_next("auth.test", status=200, retry_after=None, error="token_revoked")
    results = await checked(settings_for(slack, cde, tmp_path))
    assert only_failure(results, "Slack bot token").detail == "Slack rejected SLACK_BOT_TOKEN (token_revoked)"


async def test_a_bad_app_token(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> None:
    results = await checked(settings_for(slack, cde, tmp_path, slack_app_token="xapp-revoked-00000"))
    failed = only_failure(results, "Slack transport")
    assert failed.detail == "Slack rejected SLACK_APP_TOKEN (invalid_auth)"
    assert failed.fix is not None and "connections:write" in failed.fix


async def test_slack_rate_limiting_is_said_so(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> None:
    slack.fail_next("auth.test", status=429, retry_after=30)
    results = await checked(settings_for(slack, cde, tmp_path))
    assert "ratelimited" in only_failure(results, "Slack bot token").detail


async def test_a_slack_api_url_that_is_not_slack(slack: SlackStandIn, cde: SampleCdeApi,
                                                 tmp_path: Path) -> None:
    # The CDE stand-in answers /auth.test with a 404 that is not Slack's JSON.
    results = await checked(settings_for(slack, cde, tmp_path, slack_api_url=cde.url + "/"))
    assert [r.name for r in results.values() if not r.ok] == ["Slack bot token", "Slack transport"]
    for name in ("Slack bot token", "Slack transport"):
        failed = results[name]
        assert failed.detail == f"SLACK_API_URL {cde.url} does not answer like Slack's Web API (HTTP 404)"
        assert failed.fix is not None and "SLACK_API_URL" in failed.fix
    assert results["CDE API"].ok and results["Store"].ok


async def test_an_html_error_page_is_not_slack(slack: SlackStandIn, cde: SampleCdeApi,
                                               tmp_path: Path) -> None:
    slack.fail_next_html("auth.test", status=502)
    results = await checked(settings_for(slack, cde, tmp_path))
    failed = only_failure(results, "Slack bot token")
    assert "does not answer like Slack's Web API (HTTP 502)" in failed.detail


async def test_slack_unreachable(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/api/"
    results = await checked(settings_for(slack, cde, tmp_path, socket_mode=False, slack_api_url=url))
    failed = only_failure(results, "Slack bot token")
    assert failed.detail.startswith(f"cannot reach Slack's Web API at {url} (")
    assert failed.fix is not None and "SLACK_API_URL" in failed.fix


async def test_credentials_in_a_url_are_not_shown(slack: SlackStandIn, cde: SampleCdeApi,
                                                  tmp_path: Path) -> None:
    url = f"http://someone-xyz:{DB_PASSWORD}@127.0.0.1:{closed_port()}/api/?token={DB_PASSWORD}"
    results = await run_checks(settings_for(slack, cde, tmp_path, slack_api_url=url))
    text = format_results(results, color=False)
    assert DB_PASSWORD not in text and "someone-xyz" not in text
    assert "cannot reach Slack's Web API at http://127.0.0.1:" in text


# -- CDE -------------------------------------------------------------------------------------


async def test_cde_token_rejected(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> None:
    results = await checked(settings_for(slack, cde, tmp_path, cde_api_token="cde-wrong-token"))
    failed = only_failure(results, "CDE API")
    assert failed.detail == "the token was rejected (401)"
    assert failed.fix == "set a valid CDE_API_TOKEN"
    assert (format_results([failed], color=False)
            == "✗ CDE API — the token was rejected (401). Fix: set a valid CDE_API_TOKEN")


async def test_cde_scripted_401(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> None:
    cde.fail_next(Fault(401, {"message": "You have to be authorized to access this resource."}))
    results = await checked(settings_for(slack, cde, tmp_path))
    assert only_failure(results, "CDE API").fix == "set a valid CDE_API_TOKEN"


async def test_cde_forbidden(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> None:
    cde.fail_next(Fault(403, {"message": "Access denied."}))
    results = await checked(settings_for(slack, cde, tmp_path))
    failed = only_failure(results, "CDE API")
    assert "(403)" in failed.detail and "may not list runs" in failed.detail
    assert failed.fix is not None and "access" in failed.fix and "CDE_API_TOKEN" in failed.fix


async def test_cde_not_found(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> None:
    results = await checked(settings_for(slack, cde, tmp_path, cde_api_url=cde.url + "/nothing-here"))
    failed = only_failure(results, "CDE API")
    assert failed.detail == f"no runs endpoint at {cde.url}/nothing-here (404)"
    assert failed.fix is not None and "check CDE_API_URL" in failed.fix


async def test_cde_server_error_is_not_retried(slack: SlackStandIn, cde: SampleCdeApi,
                                               tmp_path: Path) -> None:
    cde.fail_next(Fault(503, {"message": "Maintenance."}))
    results = await checked(settings_for(slack, cde, tmp_path))
    assert only_failure(results, "CDE API").detail == "the CDE API is unavailable (HTTP 503)"
    assert len(cde.requests_to("/runs")) == 1


async def test_cde_unreachable(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    results = await checked(settings_for(slack, cde, tmp_path, cde_api_url=url))
    failed = only_failure(results, "CDE API")
    assert failed.detail == f"cannot connect to {url} (ConnectError)"
    assert failed.fix is not None and "CDE_API_URL" in failed.fix


async def test_cde_timeout(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check, "CDE_RETRY", RetryPolicy(attempts=1, deadline=0.3))
    cde.fail_next(Fault(200, {"data": []}, delay=1.0))
    results = await checked(settings_for(slack, cde, tmp_path))
    failed = only_failure(results, "CDE API")
    assert failed.detail.startswith(f"no answer from {cde.url} within")
    assert failed.fix is not None and "CDE_API_URL" in failed.fix


async def test_cde_url_that_is_not_the_cde_api(slack: SlackStandIn, cde: SampleCdeApi,
                                               tmp_path: Path) -> None:
    cde.fail_next(Fault(200, "<html>a login page</html>"))
    results = await checked(settings_for(slack, cde, tmp_path))
    failed = only_failure(results, "CDE API")
    assert failed.detail.startswith(f"{cde.url} does not answer like the CDE API")
    assert failed.fix is not None and "CDE_API_URL" in failed.fix


# -- store -----------------------------------------------------------------------------------


async def test_an_unwritable_database(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    results = await checked(settings_for(slack, cde, tmp_path,
                                         database_url=f"sqlite+aiosqlite:///{blocker}/bot.db"))
    failed = only_failure(results, "Store")
    assert "does not exist" in failed.detail and "DATABASE_URL" in failed.detail
    assert not blocker.with_name("bot.db").exists()


async def test_an_invalid_database_url(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> None:
    # A URL the settings take (its scheme is right) that SQLAlchemy cannot read.
    url = "postgresql+asyncpg://bot@db:not-a-port/cde"
    results = await checked(settings_for(slack, cde, tmp_path, database_url=url))
    assert "DATABASE_URL is not a valid SQLAlchemy URL" in only_failure(results, "Store").detail


async def test_a_database_password_is_never_shown(slack: SlackStandIn, cde: SampleCdeApi,
                                                  tmp_path: Path) -> None:
    url = f"postgresql://bot:{DB_PASSWORD}@127.0.0.1:{closed_port()}/cde"
    results = await checked(settings_for(slack, cde, tmp_path, database_url=url))
    failed = only_failure(results, "Store")
    assert "127.0.0.1" in failed.detail


async def test_an_in_memory_database_is_flagged(slack: SlackStandIn, cde: SampleCdeApi,
                                                tmp_path: Path) -> None:
    results = await checked(settings_for(slack, cde, tmp_path, database_url="sqlite+aiosqlite:///:memory:"))
    store = results["Store"]
    assert store.ok and "in memory" in store.detail and "lost" in store.detail


# -- independence, time bounds, secrets --------------------------------------------------------


async def test_everything_failing_at_once_is_reported_check_by_check(tmp_path: Path) -> None:
    port = closed_port()
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    settings = Settings(
        _env_file=None, slack_bot_token=BOT_TOKEN, slack_app_token=APP_TOKEN,
        slack_api_url=f"http://127.0.0.1:{port}/api/", cde_api_url=f"http://127.0.0.1:{port}",
        cde_api_token=CDE_TOKEN, database_url=f"sqlite+aiosqlite:///{blocker}/x.db",
    )
    results = await run_checks(settings)
    assert [r.name for r in results] == NAMES
    assert not any(r.ok for r in results)
    assert all(r.fix or "DATABASE_URL" in r.detail for r in results)
    assert_no_secret(format_results(results, color=False))


async def test_a_check_that_crashes_does_not_stop_the_others(
    slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def crash(settings: Settings) -> CheckResult:
        raise RuntimeError(f"boom with {CDE_TOKEN}")

    monkeypatch.setattr(check, "check_cde", crash)
    results = await checked(settings_for(slack, cde, tmp_path))
    assert only_failure(results, "CDE API").detail == "unexpected error (RuntimeError)"


def answered(result: CheckResult) -> Callable[[Settings], Awaitable[CheckResult]]:
    """A check that gives `result` without waiting for anything."""
    async def check(settings: Settings) -> CheckResult:
        return result
    return check


async def test_a_check_that_hangs_is_cut_off(
    slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def hang(settings: Settings) -> CheckResult:
        await asyncio.sleep(60)
        raise AssertionError("not reached")

    # The other checks answer as they do against the stand-ins, but at once: a short time
    # limit applies to every check, and real ones may need longer on a busy machine.
    settings = settings_for(slack, cde, tmp_path)
    for name in ("check_bot_token", "check_transport", "check_cde"):
        answer = await getattr(check, name)(settings)
        monkeypatch.setattr(check, name, answered(answer))
    monkeypatch.setattr(check, "CHECK_TIMEOUT", 0.1)
    monkeypatch.setattr(check, "check_store", hang)
    results = await asyncio.wait_for(checked(settings), 10)
    assert only_failure(results, "Store").detail.startswith("no answer within")


async def test_a_secret_in_a_detail_is_redacted(
    slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def leaky(settings: Settings) -> CheckResult:
        return CheckResult("Store", False, f"failed with {BOT_TOKEN} and {DB_PASSWORD}", f"not {CDE_TOKEN}")

    monkeypatch.setattr(check, "check_store", leaky)
    url = f"sqlite+aiosqlite:///{tmp_path}/x.db"
    settings = settings_for(slack, cde, tmp_path, database_url=url.replace("sqlite+aiosqlite://",
                                                                           f"sqlite+aiosqlite://u:{DB_PASSWORD}@"))
    store = by_name(await run_checks(settings))["Store"]
    assert store.detail == f"failed with {REDACTED} and {REDACTED}"
    assert store.fix == f"not {REDACTED}"


# -- main ------------------------------------------------------------------------------------


def test_main_reports_a_settings_error(capsys: pytest.CaptureFixture[str]) -> None:
    def bad() -> Settings:
        raise ConfigError("cde-bot cannot start; fix these settings:\n  - CDE_API_TOKEN: is not set")

    assert main(bad) == 2  # as for every sub-command: bad settings are not a failed check
    out = capsys.readouterr().out
    assert out.startswith("✗ Settings — cde-bot cannot start")
    assert "  - CDE_API_TOKEN: is not set" in out


def test_main_fails_when_a_check_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    port = closed_port()
    settings = Settings(
        _env_file=None, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
        slack_api_url=f"http://127.0.0.1:{port}/api/", cde_api_url=f"http://127.0.0.1:{port}",
        cde_api_token=CDE_TOKEN, database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db",
    )
    (tmp_path / "x.db").touch()
    assert main(lambda: settings) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == "✓ Settings — valid (HTTP mode)"
    assert [line.split(" — ")[0] for line in lines[1:]] == [
        "✗ Slack bot token", "✓ Slack transport", "✗ CDE API", "✓ Store",
    ]
    assert "\033[" not in captured.out  # not a terminal: no colour
    assert_no_secret(captured.out + captured.err)


async def test_a_missing_database_is_an_error_and_is_not_created(slack: SlackStandIn, cde: SampleCdeApi,
                                                                 tmp_path: Path) -> None:
    mistyped = tmp_path / "cde-bot.bd"
    results = await checked(settings_for(slack, cde, tmp_path, database_url=f"sqlite+aiosqlite:///{mistyped}"))
    failed = only_failure(results, "Store")
    assert failed.detail == f"DATABASE_URL names a database that does not exist (sqlite+aiosqlite:///{mistyped})"
    assert failed.fix is not None and "correct DATABASE_URL" in failed.fix and "cde-bot serve" in failed.fix
    assert os.listdir(tmp_path) == []


async def test_an_existing_database_is_checked_and_left_as_it_was(slack: SlackStandIn, cde: SampleCdeApi,
                                                                  tmp_path: Path) -> None:
    settings = settings_for(slack, cde, tmp_path)
    await checked(settings)
    results = await checked(settings)
    assert results["Store"].detail == f"writable (sqlite+aiosqlite:///{tmp_path / 'check.db'})"
    assert os.listdir(tmp_path) == ["check.db"]


async def test_missing_scopes_are_named_with_the_fix(slack: SlackStandIn, cde: SampleCdeApi,
                                                     tmp_path: Path) -> None:
    slack.scopes = ["chat:write"]
    results = await checked(settings_for(slack, cde, tmp_path))
    token = results["Slack bot token"]
    assert not token.ok
    assert "without the scope(s) commands" in token.detail and "reinstall" in (token.fix or "")


async def test_without_chat_write_public_the_bot_says_where_it_can_post(
    slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path
) -> None:
    slack.scopes = ["commands", "chat:write"]
    results = await checked(settings_for(slack, cde, tmp_path))
    token = results["Slack bot token"]
    assert token.ok and "only in channels it was invited to" in token.detail


@pytest.mark.parametrize("granted", [[], ["channels:history"], ["groups:history"]])
async def test_without_the_history_scopes_check_says_a_notice_may_be_posted_twice(
    slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path, granted: list[str]
) -> None:
    slack.scopes = ["commands", "chat:write", "chat:write.public", *granted]
    results = await checked(settings_for(slack, cde, tmp_path))
    token = results["Slack bot token"]
    assert token.ok and "posted twice after a crash" in token.detail
    assert all(scope in token.detail for scope in ("channels:history", "groups:history")
               if scope not in granted)


async def test_with_the_history_scopes_check_says_nothing_of_duplicates(
    slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path
) -> None:
    results = await checked(settings_for(slack, cde, tmp_path))
    assert "twice" not in results["Slack bot token"].detail


async def test_without_usergroups_read_check_says_what_cde_admins_can_name(
    slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path
) -> None:
    slack.scopes.remove("usergroups:read")
    plain = (await checked(settings_for(slack, cde, tmp_path)))["Slack bot token"]
    assert plain.ok and "without usergroups:read CDE_ADMINS can name users only" in plain.detail
    grouped = (await checked(settings_for(slack, cde, tmp_path, cde_admins="U0ALICE,S0ONCALL")))
    token = grouped["Slack bot token"]
    assert token.ok and "the user groups in CDE_ADMINS (S0ONCALL) cannot be read" in token.detail


async def test_with_usergroups_read_check_says_nothing_of_user_groups(
    slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path
) -> None:
    results = await checked(settings_for(slack, cde, tmp_path, cde_admins="S0ONCALL"))
    assert "usergroups" not in results["Slack bot token"].detail
