"""The one CDE API client: a long-lived `httpx.AsyncClient`, retries, and error mapping.

Retries and timeouts live here and only here. A retry happens only for what may succeed
the next time (connection errors, timeouts, 429, 5xx), and is bounded both in attempts and
in total time, so that a Slack lookup still answers well inside its `response_url` window.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, urlencode

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from bot import __version__
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
    CdeUnavailable,
)
from bot.cde.models import Run, RunAnswer, RunFilter, RunPage
from bot.cde.paging import PageSizing
from bot.cde.transport import AiohttpTransport

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
DEFAULT_PAGE_SIZE = 100
# Odd runs are logged once each; this bounds the memory of which were.
ODD_RUNS_REMEMBERED = 10_000

Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: at most `attempts` tries within `deadline` seconds in all."""

    attempts: int = 3
    deadline: float = 20.0
    backoff_base: float = 0.5
    backoff_max: float = 5.0
    jitter: bool = True

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1-based): exponential, with jitter."""
        delay = min(self.backoff_max, self.backoff_base * 2 ** (retry - 1))
        return random.uniform(0, delay) if self.jitter else delay


class RequestObserver(Protocol):
    """Told about every attempt (for metrics): `endpoint` is "runs" or "run", never a run
    id; `status` is None when no HTTP answer came; `error` is the `CdeError` class name.
    """

    def on_request(self, endpoint: str, status: int | None, seconds: float, error: str | None) -> None: ...


DEFAULT_RETRY = RetryPolicy()
# For tests: the same bounds, no waiting.
NO_WAIT_RETRY = RetryPolicy(backoff_base=0.0, backoff_max=0.0, jitter=False)


class CdeClient:
    """Reads runs from the CDE API. One instance per process; close it with `aclose()`."""

    def __init__(
        self,
        base_url: str,
        token: SecretStr,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        transport: httpx.AsyncBaseTransport | None = None,
        observer: RequestObserver | None = None,
    ) -> None:
        self._retry = retry
        self._observer = observer
        # Each attempt's own bound; the retry deadline clips it (see `_clip_timeout`).
        self._timeout = DEFAULT_TIMEOUT
        # Requests are sent to absolute URLs built here: httpx's joining of a path onto
        # `base_url` and merging of params re-parse the URL, some 0.5 ms a request.
        self._base = base_url.rstrip("/") + "/"
        self._http = httpx.AsyncClient(
            base_url=self._base,
            headers={
                "Authorization": f"Bearer {token.get_secret_value()}",
                "Accept": "application/json",
                "User-Agent": f"cde-bot/{__version__}",
            },
            timeout=DEFAULT_TIMEOUT,
            # httpx's API over aiohttp's pool (see `bot.cde.transport`); tests may give
            # httpx's own transport (pytest-httpx mocks that one) or a stand-in.
            transport=transport if transport is not None else AiohttpTransport(),
            follow_redirects=False,
        )
        self.page_sizing = PageSizing()
        self._odd_logged: dict[str, None] = {}  # insertion-ordered: the oldest goes first

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> CdeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def list_runs(
        self, run_filter: RunFilter | None = None, *, offset: int = 0, limit: int = 10
    ) -> RunPage:
        """One page of runs matching `run_filter`, starting at item `offset`: at most
        `limit` runs, fewer when the API gives less (what it gives is learnt; a 400 to a
        `limit` it finds too large is retried with a smaller one).
        """
        page, _ = await self._list(run_filter, offset, limit)
        return page

    async def _list(self, run_filter: RunFilter | None, offset: int, wanted: int) -> tuple[RunPage, int]:
        """A page and the `limit` it was asked with."""
        params = run_filter.to_params() if run_filter else {}
        limit = self.page_sizing.limit(wanted)
        while True:
            try:
                page = await self._get("runs", params | {"from": str(offset), "limit": str(limit)},
                                       RunPage)
            except CdeBadRequest as exc:
                smaller = self.page_sizing.smaller_after(exc, limit)
                if smaller is None:
                    raise
                log.warning("the CDE API refused limit=%d (%s); asking %d per page from now on",
                            limit, exc, smaller)
                limit = smaller
                continue
            self.page_sizing.learn(limit, page)
            self._log_odd_runs(page)
            return page.model_copy(update={"asked": limit}), limit

    async def get_run(self, run_id: str) -> Run:
        """One run by id; `CdeNotFound` when there is none."""
        # One path segment, whatever the id holds (callers pass parsed UUIDs).
        answer = await self._get(f"runs/{quote(run_id, safe='')}", {}, RunAnswer)
        if answer.run.problems:
            self._log_odd_run(answer.run.id, "; ".join(answer.run.problems))
        return answer.run

    async def iter_pages(
        self, run_filter: RunFilter | None = None, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> AsyncIterator[RunPage]:
        """Every page of matching runs, paged by `from`/`limit` until the listing ends:
        by `metadata.total`, else by a page shorter than the API's page size (when that is
        not known yet, the next page tells: an empty one ends the listing).

        The caller stops iterating as soon as it has seen enough. `metadata.next` is not
        used: its format is not documented.
        """
        offset = 0
        unsure: RunPage | None = None  # a short page that may or may not have been the last
        while True:
            page, asked = await self._list(run_filter, offset, page_size)
            if unsure is not None and page.size:
                self.page_sizing.capped_at(unsure.size)  # it was cut, not the last
            yield page
            offset += page.size
            last = self.page_sizing.is_last(page, asked, offset)
            if last:
                return
            unsure = page if last is None else None

    def _log_odd_runs(self, page: RunPage) -> None:
        """Each odd run once (by id), not every poll that lists it."""
        odd = [(run.id, "; ".join(run.problems)) for run in page.runs if run.problems]
        odd += [(item.id, item.reason) for item in page.unreadable]
        for run_id, why in odd:
            self._log_odd_run(run_id, why)

    def _log_odd_run(self, run_id: str, why: str) -> None:
        key = f"{run_id} {why}"
        if key in self._odd_logged:
            return
        if len(self._odd_logged) >= ODD_RUNS_REMEMBERED:
            del self._odd_logged[next(iter(self._odd_logged))]
        self._odd_logged[key] = None
        log.warning("the CDE API sent a run this bot cannot fully read, run %s: %s", run_id, why)

    async def _get(self, path: str, params: dict[str, str], model: type[Model]) -> Model:
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            remaining = self._retry.deadline - (time.monotonic() - started)
            try:
                return await self._send(path, params, remaining, model)
            except CdeUnavailable as exc:
                wait = self._wait_before_retry(exc, attempt, started)
                if wait is None:
                    raise
                log.warning(
                    "CDE GET /%s failed (%s), attempt %d of %d; retrying in %.1fs",
                    path, exc, attempt, self._retry.attempts, wait,
                )
                await asyncio.sleep(wait)

    def _wait_before_retry(self, exc: CdeUnavailable, attempt: int, started: float) -> float | None:
        """Seconds to wait before the next try, or None when the bounds say stop."""
        if attempt >= self._retry.attempts:
            return None
        wait = self._retry.backoff(attempt)
        if isinstance(exc, CdeRateLimited) and exc.retry_after is not None:
            wait = max(wait, exc.retry_after)
        elapsed = time.monotonic() - started
        # Waiting must leave time for the request itself; otherwise answer now.
        if elapsed + wait + 1.0 > self._retry.deadline:
            return None
        return wait

    async def _send(self, path: str, params: dict[str, str], remaining: float, model: type[Model]) -> Model:
        """One attempt: request, status, parsing; reported to the observer, if any."""
        sent = time.monotonic()
        response: httpx.Response | None = None
        try:
            response = await self._request(path, params, remaining)
            _raise_for_status(response)
            result = _parse(response, model)
        except CdeError as exc:
            self._observe(path, response, sent, type(exc).__name__)
            raise
        self._observe(path, response, sent, None)
        return result

    def _observe(self, path: str, response: httpx.Response | None, sent: float, error: str | None) -> None:
        if self._observer is not None:
            # "runs/<id>" is one endpoint: a label per run id would grow without bound.
            endpoint = "runs" if path == "runs" else "run"
            status = response.status_code if response is not None else None
            self._observer.on_request(endpoint, status, time.monotonic() - sent, error)

    async def _request(self, path: str, params: dict[str, str], remaining: float) -> httpx.Response:
        timeout = _clip_timeout(self._timeout, remaining)
        sent = time.monotonic()
        try:
            query = f"?{urlencode(params, quote_via=quote)}" if params else ""
            response = await self._http.get(f"{self._base}{path}{query}", timeout=timeout)
        except httpx.TimeoutException as exc:
            raise CdeTimeout(f"no answer from the CDE API within the timeout ({_kind(exc)})") from exc
        except httpx.TransportError as exc:
            raise CdeConnectionError(f"cannot reach the CDE API ({_kind(exc)})") from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            # Anything else httpx raises (a body that fails to decode, say) is an answer
            # this client cannot read; it must not escape as a foreign exception.
            raise CdeProtocolError(f"unreadable answer from the CDE API ({_kind(exc)})") from exc
        log.debug(
            "CDE GET /%s %s -> %d in %.0fms",
            path, params, response.status_code, (time.monotonic() - sent) * 1000,
        )
        return response


def _clip_timeout(timeout: httpx.Timeout, remaining: float) -> httpx.Timeout:
    """The configured timeout, but never past what is left of the deadline."""
    cap = max(remaining, 0.1)

    def clip(value: float | None) -> float:
        return cap if value is None else min(value, cap)

    return httpx.Timeout(
        connect=clip(timeout.connect), read=clip(timeout.read),
        write=clip(timeout.write), pool=clip(timeout.pool),
    )


def _kind(exc: Exception) -> str:
    # httpx's messages may quote the URL; the class name says enough and leaks nothing.
    return type(exc).__name__


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    message = _api_message(response)
    if status == 400:
        raise CdeBadRequest(message or "Bad request.", _field_errors(response))
    if status == 401:
        raise CdeUnauthorized(message or "unauthorized")
    if status == 403:
        raise CdeForbidden(message or "access denied")
    if status == 404:
        raise CdeNotFound(message or "not found")
    if status == 429:
        raise CdeRateLimited(
            "the CDE API is rate limiting the bot", _retry_after(response.headers)
        )
    if status >= 500:
        raise CdeServerError(f"the CDE API answered HTTP {status}", status=status)
    raise CdeProtocolError(f"unexpected HTTP {status} from the CDE API", status=status)


def _json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _api_message(response: httpx.Response) -> str | None:
    body = _json_body(response)
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else None


def _field_errors(response: httpx.Response) -> dict[str, str]:
    body = _json_body(response)
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, dict):
        return {}
    return {str(field): str(message) for field, message in errors.items()}


def _retry_after(headers: httpx.Headers) -> float | None:
    """Retry-After as seconds: either a number or an HTTP date (RFC 9110)."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _parse(response: httpx.Response, model: type[Model]) -> Model:
    try:
        body = response.json()
    except ValueError as exc:
        content_type = response.headers.get("Content-Type", "unknown")
        raise CdeProtocolError(
            f"the CDE API answered with something that is not JSON ({content_type})"
        ) from exc
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)[:3]
        )
        raise CdeProtocolError(f"unexpected answer from the CDE API ({problems})") from exc


__all__ = ["DEFAULT_RETRY", "NO_WAIT_RETRY", "CdeClient", "CdeError", "RequestObserver", "RetryPolicy"]
