"""`cde-bot check`: settings and every connection, checked without starting the bot.

One line per check, with what to do when it fails; exit status 1 when any check fails.
Each check is independent (one failing does not stop the others) and bounded in time.

No secret is ever printed: details are built from Slack's error codes, HTTP statuses and
exception class names, never from exception texts (which may quote a URL or a header), and
every line is scrubbed of the configured secrets as a last line of defence.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.cde.client import CdeClient, RetryPolicy
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
from bot.config import ConfigError, Settings, load_settings
from bot.slack.client import web_client
from bot.store.base import StoreError

CHECK_TIMEOUT = 10.0  # seconds each check may take at most
CDE_RETRY = RetryPolicy(attempts=1, deadline=CHECK_TIMEOUT)
EVENTS_PATH = "/slack/events"  # as served by bot.server in HTTP mode
STATE_KEY_PREFIX = "cde-bot-check:"
REDACTED = "[redacted]"

BOT_TOKEN_FIX = (
    "set SLACK_BOT_TOKEN to the Bot User OAuth Token (xoxb-...) from the app's OAuth & Permissions "
    "page (reinstall the app if it was revoked)"
)
APP_TOKEN_FIX = (
    "set SLACK_APP_TOKEN to an app-level token (xapp-...) with the connections:write scope, from "
    "Basic Information > App-Level Tokens, and turn Socket Mode on"
)
NOT_SLACK_FIX = "leave SLACK_API_URL unset for Slack, or give the Web API's base URL ending in /api/"
UNREACHABLE_SLACK_FIX = "check SLACK_API_URL and that this machine can reach it (network, proxy, firewall)"
CDE_URL_FIX = "check CDE_API_URL: the CDE API's base URL, e.g. https://cde.productsup.com"
CDE_UNREACHABLE_FIX = "check CDE_API_URL and that this machine can reach it (network, proxy, firewall)"
# Slack errors that mean the token itself is no good.
BAD_TOKEN_ERRORS = frozenset({
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
    "not_allowed_token_type", "invalid_token", "no_permission", "missing_scope", "ekm_access_denied",
})


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
    secrets = _secrets(settings)
    return [_scrubbed(result, secrets) for result in results]


async def _guarded(name: str, check: Callable[[], Awaitable[CheckResult]]) -> CheckResult:
    """Run one check within `CHECK_TIMEOUT`; whatever goes wrong becomes its result."""
    try:
        # A backstop: each check bounds its own calls by CHECK_TIMEOUT already.
        async with asyncio.timeout(CHECK_TIMEOUT * 1.2):
            return await check()
    except TimeoutError:
        return CheckResult(name, False, f"no answer within {CHECK_TIMEOUT:.0f} s",
                           "check the network between this machine and the service")
    except Exception as exc:  # a check must never take the others down with it
        return CheckResult(name, False, f"unexpected error ({type(exc).__name__})",
                           "run with LOG_LEVEL=DEBUG for details, and report it if it persists")


# What the bot cannot work without (manifest.yml asks for these and chat:write.public).
REQUIRED_SCOPES = ("commands", "chat:write")


async def check_bot_token(settings: Settings) -> CheckResult:
    """`auth.test` with the bot token: which workspace and bot user it belongs to."""
    name = "Slack bot token"
    client = _slack_client(settings)
    headers: dict[str, Any] = {}
    answer = await _slack_call(name, client.auth_test(), settings, "SLACK_BOT_TOKEN", BOT_TOKEN_FIX,
                               headers=headers)
    if isinstance(answer, CheckResult):
        return answer
    detail = f"workspace {answer.get('team', '?')} as @{answer.get('user', '?')}"
    granted = _scopes(headers)
    if granted is None:
        return CheckResult(name, True, detail)
    missing = [scope for scope in REQUIRED_SCOPES if scope not in granted]
    if missing:
        return CheckResult(name, False, f"{detail}, but without the scope(s) {', '.join(missing)}",
                           "add them under OAuth & Permissions (or create the app from manifest.yml) "
                           "and reinstall the app")
    if "chat:write.public" not in granted:
        detail += "; without chat:write.public it can post only in channels it was invited to"
    return CheckResult(name, True, detail)


def _scopes(headers: dict[str, Any]) -> set[str] | None:
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
    client = _slack_client(settings)
    answer = await _slack_call(
        name, client.apps_connections_open(app_token=settings.slack_app_token.get_secret_value()),
        settings, "SLACK_APP_TOKEN", APP_TOKEN_FIX,
    )
    if isinstance(answer, CheckResult):
        return answer
    return CheckResult(name, True, "Socket Mode: app-level token accepted")


def _slack_client(settings: Settings) -> AsyncWebClient:
    """The bot's own client (same base URL and token), made to try once within the check's time."""
    client = web_client(settings)
    client.timeout = int(CHECK_TIMEOUT)
    client.retry_handlers = []
    return client


async def _slack_call(name: str, call: Awaitable[AsyncSlackResponse], settings: Settings, setting: str,
                      fix: str, *, headers: dict[str, Any] | None = None) -> dict[str, Any] | CheckResult:
    """Slack's answer (its headers into `headers`), or a failed result saying why (from
    error codes and class names only).
    """
    where = _public_url(str(settings.slack_api_url))
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            response = await call
        if headers is not None:
            headers.update(response.headers or {})
        return response.data if isinstance(response.data, dict) else {}
    except SlackApiError as exc:
        data = exc.response.data if exc.response is not None else None
        status = exc.response.status_code if exc.response is not None else None
        if not isinstance(data, dict) or "ok" not in data:
            return CheckResult(name, False,
                               f"SLACK_API_URL {where} does not answer like Slack's Web API (HTTP {status})",
                               NOT_SLACK_FIX)
        error = str(data.get("error") or "unknown_error")
        if error in BAD_TOKEN_ERRORS:
            return CheckResult(name, False, f"Slack rejected {setting} ({error})", fix)
        if error == "ratelimited":
            return CheckResult(name, False, "Slack is rate limiting this app (ratelimited)",
                               "wait a minute and check again")
        return CheckResult(name, False, f"Slack answered {error} (HTTP {status})", fix)
    except TimeoutError:
        return CheckResult(name, False, f"no answer from {where} within {CHECK_TIMEOUT:.0f} s",
                           UNREACHABLE_SLACK_FIX)
    except Exception as exc:  # SlackClientError, aiohttp's errors, OSError: only the class is shown
        return CheckResult(name, False, f"cannot reach Slack's Web API at {where} ({type(exc).__name__})",
                           UNREACHABLE_SLACK_FIX)


async def check_cde(settings: Settings) -> CheckResult:
    """One 1-item request to the CDE API: reachable, and the token accepted."""
    name = "CDE API"
    where = _public_url(str(settings.cde_api_url))
    try:
        async with CdeClient(str(settings.cde_api_url), settings.cde_api_token, retry=CDE_RETRY) as cde:
            page = await cde.list_runs(limit=1)
    except CdeUnauthorized:
        return CheckResult(name, False, "the token was rejected (401)", "set a valid CDE_API_TOKEN")
    except CdeForbidden:
        return CheckResult(name, False, "the token was accepted, but its account may not list runs (403)",
                           "give the CDE account behind CDE_API_TOKEN access to runs, or use another token")
    except CdeNotFound:
        return CheckResult(name, False, f"no runs endpoint at {where} (404)", CDE_URL_FIX)
    except CdeBadRequest:
        return CheckResult(name, False, f"{where} refused a plain request for one run (400)", CDE_URL_FIX)
    except CdeRateLimited:
        return CheckResult(name, False, "the CDE API is rate limiting this token (429)",
                           "wait a minute and check again")
    except CdeServerError as exc:
        return CheckResult(name, False, f"the CDE API is unavailable (HTTP {exc.status})",
                           "try again later; if it persists, ask Productsup about the CDE API")
    except CdeTimeout:
        return CheckResult(name, False, f"no answer from {where} within {CHECK_TIMEOUT:.0f} s",
                           CDE_UNREACHABLE_FIX)
    except CdeConnectionError as exc:
        return CheckResult(name, False, f"cannot connect to {where} ({_cause(exc)})", CDE_UNREACHABLE_FIX)
    except CdeProtocolError as exc:
        status = f"HTTP {exc.status}" if exc.status else _cause(exc)
        return CheckResult(name, False, f"{where} does not answer like the CDE API ({status})", CDE_URL_FIX)
    except CdeError as exc:
        return CheckResult(name, False, f"the CDE API failed ({type(exc).__name__})", CDE_URL_FIX)
    return CheckResult(name, True, f"reachable at {where}, token accepted ({page.total} runs visible)")


async def check_store(settings: Settings) -> CheckResult:
    """Open the store (creating or migrating its schema), write, read back and delete a value."""
    from bot.store.sql import store_from_url  # SQLAlchemy is slow to import; only here

    name = "Store"
    where = _public_database_url(settings.database_url)
    try:
        store = store_from_url(settings.database_url)
    except StoreError as exc:
        return CheckResult(name, False, str(exc))  # the message says what to do
    key = f"{STATE_KEY_PREFIX}{uuid.uuid4()}"
    value = datetime.now(UTC).isoformat()
    existed = _sqlite_file_exists(settings.database_url)
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
        with contextlib.suppress(Exception):  # closing must not turn a result into an error
            await store.close()
    if read_back != value:
        return CheckResult(name, False, f"{where} did not give back a value just written",
                           "check that nothing else rewrites the bot's state table")
    detail = f"writable ({where})"
    if existed is False:
        # A mistyped path must not pass for the state the operator expects to find.
        detail += "; it did not exist and was created now: if the bot has run before, check DATABASE_URL"
    if _is_memory_database(settings.database_url):
        detail += "; in memory, so subscriptions and notice state are lost when the bot stops"
    return CheckResult(name, True, detail)


def check_admin_channel(settings: Settings) -> CheckResult:
    """Reported, not verified: that would take posting in it, which a check should not do."""
    return CheckResult(
        "Admin channel", True,
        f"SLACK_ADMIN_CHANNEL is {settings.slack_admin_channel}; not verified, as that would take "
        "posting in it (invite the bot if the channel is private)",
        skipped=True,
    )


# -- output ------------------------------------------------------------------------------------

GREEN, RED, YELLOW, DIM, BOLD, RESET = "\033[32m", "\033[31m", "\033[33m", "\033[2m", "\033[1m", "\033[0m"


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
    """Load settings, run every check, print one line each; 0 when all pass, else 1."""
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    unicode = _can_print("✓✗–—")
    try:
        settings = load()
    except ConfigError as exc:
        print(format_results([CheckResult("Settings", False, str(exc))], color=color, unicode=unicode))
        return 1
    _quiet_logs(settings)
    results = [CheckResult("Settings", True, "valid (" + ("Socket Mode" if settings.socket_mode
                                                         else "HTTP mode") + ")")]
    results += asyncio.run(run_checks(settings))
    print(format_results(results, color=color, unicode=unicode), flush=True)
    return 0 if all_ok(results) else 1


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


def _cause(exc: BaseException) -> str:
    """The class name of what caused `exc` (the transport's error), else of `exc` itself."""
    return type(exc.__cause__ or exc).__name__


def _public_url(url: str) -> str:
    """`url` without user info, query or fragment, any of which may carry a credential."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
        path = "" if parts.path == "/" else parts.path
        return urlunsplit((parts.scheme, netloc, path, "", ""))
    except ValueError:
        return "(unparseable URL)"


def _public_database_url(database_url: str) -> str:
    """DATABASE_URL without its password or query; an SQLite file's path made absolute."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    try:
        url = make_url(database_url)
    except (SQLAlchemyError, ValueError):
        return "(unparseable DATABASE_URL)"
    url = url.set(query={})
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database in ("", ":memory:"):
        return f"{url.drivername}:///:memory:"
    if url.get_backend_name() == "sqlite" and database not in ("", ":memory:") \
            and not database.startswith("file:"):
        url = url.set(database=str(Path(database).resolve()))
    return url.render_as_string(hide_password=True)


def _sqlite_file_exists(database_url: str) -> bool | None:
    """Whether an SQLite database file is there already; None for other databases."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(database_url)
    except ArgumentError:
        return None
    if not url.drivername.startswith("sqlite") or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).exists()


def _is_memory_database(database_url: str) -> bool:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    try:
        url = make_url(database_url)
    except (SQLAlchemyError, ValueError):
        return False
    return url.get_backend_name() == "sqlite" and (url.database or "") in ("", ":memory:")


def _secrets(settings: Settings) -> list[str]:
    """Every value that must never be printed: the tokens, and the database password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    secrets = list(settings.secrets())
    try:
        password = make_url(settings.database_url).password
    except (SQLAlchemyError, ValueError):
        password = None
    if password:
        secrets.append(str(password))
    return sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)


def _scrubbed(result: CheckResult, secrets: Sequence[str]) -> CheckResult:
    detail, fix = result.detail, result.fix
    for secret in secrets:
        detail = detail.replace(secret, REDACTED)
        fix = fix.replace(secret, REDACTED) if fix is not None else None
    return replace(result, detail=detail, fix=fix)


__all__ = ["CHECK_TIMEOUT", "CheckResult", "all_ok", "format_results", "main", "run_checks"]
