"""`cde-bot check`: settings and every connection, checked without starting the bot.

One line per check, with what to do when it fails; exit status 1 when any check fails, 2
when the settings are invalid (as for every sub-command). Nothing is posted and no file is
created.
Each check is independent (one failing does not stop the others) and bounded in time.

No secret is ever printed: details are built from Slack's error codes, HTTP statuses and
exception class names, never from exception texts (which may quote a URL or a header), and
every line is scrubbed of the configured secrets as a last line of defence.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.access import is_user_group
from bot.ansi import BOLD, GREEN, RED, RESET, YELLOW
from bot.cde.client import RetryPolicy
from bot.config import ConfigError, Settings, load_settings
from bot.logs import public_url
from bot.ops.exits import EXIT_FAILED, EXIT_OK, EXIT_SETTINGS
from bot.ops.probe import probe_cde
from bot.redact import Redactor, for_settings
from bot.slack.client import (
    EVENTS_PATH,
    TokenCheckFailed,
    verify_app_token,
    verify_bot_token,
    web_client,
)
from bot.store.base import Store, StoreError

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 10.0  # seconds each check may take at most
CDE_RETRY = RetryPolicy(attempts=1, deadline=CHECK_TIMEOUT)
STATE_KEY_PREFIX = "cde-bot-check:"
MISSING_DATABASE_FIX = ("if the bot has run before, correct DATABASE_URL; on a new install, "
                        "`cde-bot serve` creates the database when it first starts")


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check. `fix` says what to do; `skipped` marks a check that could
    not be made (it does not count as a failure)."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None
    skipped: bool = False


# -- the checks ------------------------------------------------------------------------------


async def run_checks(settings: Settings) -> list[CheckResult]:
    """Check every connection the bot needs, concurrently; one result per check, in order."""
    checks: list[tuple[str, Callable[[], Awaitable[CheckResult]]]] = [
        ("Slack bot token", lambda: check_bot_token(settings)),
        ("Slack transport", lambda: check_transport(settings)),
        ("CDE API", lambda: check_cde(settings)),
        ("Store", lambda: check_store(settings)),
    ]
    results = list(await asyncio.gather(*(_guarded(name, check) for name, check in checks)))
    if settings.slack_admin_channel is not None:
        results.append(check_admin_channel(settings))
    redactor = for_settings(settings)
    return [_scrubbed(result, redactor) for result in results]


async def _guarded(name: str, check: Callable[[], Awaitable[CheckResult]]) -> CheckResult:
    """Run one check within `CHECK_TIMEOUT`; whatever goes wrong becomes its result."""
    try:
        # A backstop: each check bounds its own calls by CHECK_TIMEOUT already.
        async with asyncio.timeout(CHECK_TIMEOUT * 1.2):
            return await check()
    except TimeoutError:
        return CheckResult(name, False, f"no answer within {CHECK_TIMEOUT:.0f} s",
                           "check the network between this machine and the service")
    except Exception as exc:
        log.exception("the %s check failed unexpectedly", name)
        return CheckResult(name, False, f"unexpected error ({type(exc).__name__})",
                           "run with LOG_LEVEL=DEBUG for details, and report it if it persists")


# What the bot cannot work without (manifest.yml asks for these and chat:write.public).
REQUIRED_SCOPES = ("commands", "chat:write")
# Without these the bot cannot look in a channel's history for a post whose fate a crash
# or a timeout left unknown, so it posts it again (see bot.notices.outbox).
HISTORY_SCOPES = ("channels:history", "groups:history")


async def check_bot_token(settings: Settings) -> CheckResult:
    """`auth.test` with the bot token: which workspace and bot user it belongs to."""
    name = "Slack bot token"
    try:
        answer = await verify_bot_token(_slack_client(settings), shown_url=_slack_url(settings),
                                        timeout=CHECK_TIMEOUT)
    except TokenCheckFailed as exc:
        return CheckResult(name, False, exc.detail, exc.fix)
    data = answer.data if isinstance(answer.data, dict) else {}
    detail = f"workspace {data.get('team', '?')} as @{data.get('user', '?')}"
    granted = _scopes(answer.headers or {})
    if granted is None:
        return CheckResult(name, True, detail)
    missing = [scope for scope in REQUIRED_SCOPES if scope not in granted]
    if missing:
        return CheckResult(name, False, f"{detail}, but without the scope(s) {', '.join(missing)}",
                           "add them under OAuth & Permissions (or create the app from manifest.yml) "
                           "and reinstall the app")
    if "chat:write.public" not in granted:
        detail += "; without chat:write.public it can post only in channels it was invited to"
    no_history = [scope for scope in HISTORY_SCOPES if scope not in granted]
    if no_history:
        detail += (f"; without {' and '.join(no_history)} a notice may be posted twice after a "
                   "crash or a timeout (the bot cannot look for it in the channel's history)")
    if "usergroups:read" not in granted:
        detail += _without_usergroups(settings)
    return CheckResult(name, True, detail)


def _without_usergroups(settings: Settings) -> str:
    """What the bot cannot do without `usergroups:read`: read the user groups in CDE_ADMINS."""
    groups = [admin for admin in settings.cde_admins if is_user_group(admin)]
    if groups:
        return (f"; without usergroups:read the user groups in CDE_ADMINS ({', '.join(groups)}) "
                "cannot be read, so their members may not subscribe, unsubscribe or mute")
    return "; without usergroups:read CDE_ADMINS can name users only, not user groups"


def _scopes(headers: Mapping[str, Any]) -> set[str] | None:
    """The token's scopes from Slack's `x-oauth-scopes` header; None when not sent."""
    for key, value in headers.items():
        if key.lower() == "x-oauth-scopes":
            text = value[0] if isinstance(value, list) else str(value)
            return {scope.strip() for scope in text.split(",") if scope.strip()}
    return None


async def check_transport(settings: Settings) -> CheckResult:
    """Socket Mode: `apps.connections.open` with the app token. HTTP mode: the signing secret
    is set (only a signed request from Slack can prove it right)."""
    name = "Slack transport"
    if settings.slack_app_token is None:
        return CheckResult(
            name, True,
            f"HTTP mode: signing secret set (only a request from Slack can verify it); Slack must "
            f"reach https://<host>{EVENTS_PATH} (served on PORT {settings.port})",
        )
    try:
        await verify_app_token(_slack_client(settings), settings.slack_app_token.get_secret_value(),
                               shown_url=_slack_url(settings), timeout=CHECK_TIMEOUT)
    except TokenCheckFailed as exc:
        return CheckResult(name, False, exc.detail, exc.fix)
    return CheckResult(name, True, "Socket Mode: app-level token accepted")


def _slack_client(settings: Settings) -> AsyncWebClient:
    """The bot's own client (same base URL and token), made to try once within the check's time."""
    client = web_client(settings, keep_session=False)  # a session per call, bounded by the timeout
    client.timeout = int(CHECK_TIMEOUT)
    client.retry_handlers = []
    return client


def _slack_url(settings: Settings) -> str:
    return public_url(str(settings.slack_api_url))


async def check_cde(settings: Settings) -> CheckResult:
    """One 1-item request to the CDE API (`probe_cde`): reachable, and the token accepted."""
    probe = await probe_cde(settings, retry=CDE_RETRY)
    return CheckResult("CDE API", probe.ok, probe.detail, probe.fix)


async def check_store(settings: Settings) -> CheckResult:
    """Open the store (migrating its schema if need be), write, read back and delete a value.

    A database file that is not there is a failure, and is not created: a mistyped path
    must not pass for the state the operator expects to find.
    """
    # SQLAlchemy is slow to import; only here.
    from bot.store import urls
    from bot.store.sql import store_from_url

    name = "Store"
    where = urls.public_url(settings.database_url)
    if urls.sqlite_file_exists(settings.database_url) is False:
        return CheckResult(name, False, f"DATABASE_URL names a database that does not exist ({where})",
                           MISSING_DATABASE_FIX)
    try:
        store = store_from_url(settings.database_url)
    except StoreError as exc:
        return CheckResult(name, False, str(exc))  # the message says what to do
    key = f"{STATE_KEY_PREFIX}{uuid.uuid4()}"
    value = datetime.now(UTC).isoformat()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await store.open()
            await store.set_state(key, value)
            read_back = await store.get_state(key)
            await store.set_state(key, None)
    except TimeoutError:
        return CheckResult(name, False, f"no answer from {where} within {CHECK_TIMEOUT:.0f} s",
                           "check DATABASE_URL and that the database server is up and reachable")
    except StoreError as exc:
        return CheckResult(name, False, str(exc), None)
    finally:
        await _close_quietly(store)
    if read_back != value:
        return CheckResult(name, False, f"{where} did not give back a value just written",
                           "check that nothing else rewrites the bot's state table")
    detail = f"writable ({where})"
    url = urls.parse(settings.database_url)
    if url is not None and urls.is_sqlite_memory(url):
        detail += "; in memory, so subscriptions and notice state are lost when the bot stops"
    return CheckResult(name, True, detail)


async def _close_quietly(store: Store) -> None:
    """Close the store; failing to must not turn the check's result into an error."""
    try:
        await store.close()
    except Exception:
        # The result is already known; what went wrong is in the log with LOG_LEVEL=DEBUG.
        log.debug("could not close the store after its check", exc_info=True)


def check_admin_channel(settings: Settings) -> CheckResult:
    """Reported, not verified: that would take posting in it, which a check should not do."""
    return CheckResult(
        "Admin channel", True,
        f"SLACK_ADMIN_CHANNEL is {settings.slack_admin_channel}; not verified, as that would take "
        "posting in it (invite the bot if the channel is private)",
        skipped=True,
    )


# -- output ------------------------------------------------------------------------------------

def format_results(results: Sequence[CheckResult], *, color: bool = False, unicode: bool = True) -> str:
    """One line per check: `✓ Slack bot token — workspace Test as @cde-bot`, or for a failure
    `✗ CDE API — the token was rejected (401). Fix: set a valid CDE_API_TOKEN`."""
    lines = []
    for result in results:
        if result.skipped:
            mark, tint = ("–" if unicode else "-"), YELLOW
        elif result.ok:
            mark, tint = ("✓" if unicode else "OK"), GREEN
        else:
            mark, tint = ("✗" if unicode else "FAIL"), RED
        dash = "—" if unicode else "-"
        if color:
            line = f"{tint}{mark}{RESET} {BOLD}{result.name}{RESET} {dash} {result.detail}"
        else:
            line = f"{mark} {result.name} {dash} {result.detail}"
        if result.fix and not result.ok:
            fix = f"{YELLOW}Fix:{RESET}" if color else "Fix:"
            line = f"{line.rstrip('. ')}. {fix} {result.fix}"
        lines.append(line)
    return "\n".join(lines)


def all_ok(results: Sequence[CheckResult]) -> bool:
    return all(result.ok for result in results)


def main(load: Callable[[], Settings] = load_settings) -> int:
    """Load settings, run every check, print one line each; `EXIT_OK` when all pass, `EXIT_FAILED`
    when one fails, `EXIT_SETTINGS` when the settings are invalid."""
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    unicode = _can_print("✓✗–—")
    try:
        settings = load()
    except ConfigError as exc:
        print(format_results([CheckResult("Settings", False, str(exc))], color=color, unicode=unicode))
        return EXIT_SETTINGS
    _quiet_logs(settings)
    results = [CheckResult("Settings", True, "valid (" + ("Socket Mode" if settings.socket_mode
                                                         else "HTTP mode") + ")")]
    results += asyncio.run(run_checks(settings))
    print(format_results(results, color=color, unicode=unicode), flush=True)  # redacted by run_checks
    return EXIT_OK if all_ok(results) else EXIT_FAILED


# -- helpers -----------------------------------------------------------------------------------


def _quiet_logs(settings: Settings) -> None:
    """The results say what went wrong; library warnings only with LOG_LEVEL=DEBUG (scrubbed)."""
    from bot import logs

    logs.configure("DEBUG" if settings.log_level == "DEBUG" else "CRITICAL", settings.secrets())


def _can_print(text: str) -> bool:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _scrubbed(result: CheckResult, redactor: Redactor) -> CheckResult:
    fix = redactor.text(result.fix) if result.fix is not None else None
    return replace(result, name=redactor.text(result.name), detail=redactor.text(result.detail), fix=fix)


__all__ = ["CHECK_TIMEOUT", "CheckResult", "all_ok", "format_results", "main", "run_checks"]
