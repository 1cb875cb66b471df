"""One request to the CDE API, to tell whether it can be reached and accepts the token:
what `cde-bot check` reports and what start-up checks before polling.

Details are built from HTTP statuses and exception class names, never from exception texts
(which may quote a URL or a header), and are scrubbed of the configured secrets as well.
"""

from __future__ import annotations

from dataclasses import dataclass

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
from bot.config import Settings, description
from bot.logs import public_url, scrub
from bot.slack.client import RATE_LIMITED_FIX

PROBE_TIMEOUT = 10.0  # seconds the request may take at most
PROBE_RETRY = RetryPolicy(attempts=1, deadline=PROBE_TIMEOUT)

CDE_URL_FIX = f"check CDE_API_URL: {description('cde_api_url')}"
CDE_UNREACHABLE_FIX = "check CDE_API_URL and that this machine can reach it (network, proxy, firewall)"
# What each CDE API error means here: (error type, detail, fix), the first match wins, so a
# subclass comes before its base. Details may name {where}, {status}, {seconds}, {cause} and
# {answer} (the HTTP status when there was one, else the cause).
CDE_FAILURES: tuple[tuple[type[CdeError], str, str], ...] = (
    (CdeUnauthorized, "the token was rejected (401)", "set a valid CDE_API_TOKEN"),
    (CdeForbidden, "the token was accepted, but its account may not list runs (403)",
     "give the CDE account behind CDE_API_TOKEN access to runs, or use another token"),
    (CdeNotFound, "no runs endpoint at {where} (404)", CDE_URL_FIX),
    (CdeBadRequest, "{where} refused a plain request for one run (400)", CDE_URL_FIX),
    (CdeRateLimited, "the CDE API is rate limiting this token (429)", RATE_LIMITED_FIX),
    (CdeServerError, "the CDE API is unavailable (HTTP {status})",
     "try again later; if it persists, ask Productsup about the CDE API"),
    (CdeTimeout, "no answer from {where} within {seconds:.0f} s", CDE_UNREACHABLE_FIX),
    (CdeConnectionError, "cannot connect to {where} ({cause})", CDE_UNREACHABLE_FIX),
    (CdeProtocolError, "{where} does not answer like the CDE API ({answer})", CDE_URL_FIX),
    (CdeError, "the CDE API failed ({kind})", CDE_URL_FIX),
)


@dataclass(frozen=True)
class CdeProbe:
    """What one 1-item request told about the CDE API: what it found (`detail`), what to do
    when it failed (`fix`), and the error when there was one (start-up tells a rejected token
    apart from an unreachable API)."""

    detail: str
    fix: str | None = None
    error: CdeError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def token_rejected(self) -> bool:
        """The API answered and refused the token (401 or 403): no retry will help."""
        return isinstance(self.error, CdeUnauthorized | CdeForbidden)


async def probe_cde(settings: Settings, *, retry: RetryPolicy = PROBE_RETRY) -> CdeProbe:
    """One 1-item request to the CDE API: reachable, and the token accepted."""
    where = public_url(str(settings.cde_api_url))
    try:
        async with CdeClient(str(settings.cde_api_url), settings.cde_api_token, retry=retry) as cde:
            page = await cde.list_runs(limit=1)
    except CdeError as exc:
        detail, fix = _cde_failure(exc, where, retry.deadline)
        secrets = settings.secrets()
        return CdeProbe(scrub(detail, secrets), scrub(fix, secrets), exc)
    return CdeProbe(f"reachable at {where}, token accepted ({page.total} runs visible)")


def _cde_failure(exc: CdeError, where: str, seconds: float) -> tuple[str, str]:
    """The detail and fix `CDE_FAILURES` gives for `exc`."""
    cause = _cause(exc)
    for kind, detail, fix in CDE_FAILURES:
        if isinstance(exc, kind):
            return detail.format(
                where=where, status=exc.status, seconds=seconds, cause=cause,
                answer=f"HTTP {exc.status}" if exc.status else cause, kind=type(exc).__name__,
            ), fix
    raise AssertionError("CDE_FAILURES ends with CdeError, which matches every CDE error")


def _cause(exc: BaseException) -> str:
    """The class name of what caused `exc` (the transport's error), else of `exc` itself."""
    return type(exc.__cause__ or exc).__name__
