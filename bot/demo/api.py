"""An aiohttp server that follows the CDE API contract (`GET /runs`, `GET /runs/{id}`).

It validates parameters as the real API does (400 with per-field messages), checks the
bearer token (401), pages by `from`/`limit` and lists newest first. Tests can queue faults
(any status, headers, body, or a delay) and read the requests it received.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

# The token the demo API accepts: `cde-bot demo-api` prints it, the console's demo uses it.
DEMO_TOKEN = "demo-token"
MAX_LIMIT = 1000
MAX_RUNS = 20_000
# Requests kept for tests to inspect; older ones are dropped so a long run stays small.
MAX_RECORDED = 10_000
KEEPALIVE_SECONDS = 10.0
FILTERS = ("id", "connector-id", "connector-version", "site-id", "state", "process-id")
_UUID_FILTERS = ("id", "connector-id", "process-id")


@dataclass
class Fault:
    """One scripted answer in place of the real one."""

    status: int = 500
    body: str | dict[str, Any] = field(default_factory=lambda: {"message": "Internal error."})
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class ListingShape:
    """How `GET /runs` pages, where the contract leaves it open: a cap on the page below
    the asked `limit` (`page_cap`), the largest `limit` taken before a 400 (`max_limit`),
    the order, and which of `metadata.total` / `metadata.limit` are given.
    """

    page_cap: int | None = None
    max_limit: int = MAX_LIMIT
    oldest_first: bool = False
    tells_total: bool = True
    tells_limit: bool = True


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None


class SampleCdeApi:
    """In-memory CDE API. `runs` are raw JSON dicts exactly as the API sends them."""

    def __init__(
        self, runs: list[dict[str, Any]] | None = None, *, token: str | None = "cde-test-token"
    ) -> None:
        self.runs: list[dict[str, Any]] = list(runs or [])
        self.token = token
        self.delay = 0.0
        self.faults: deque[Fault] = deque()
        self.shape = ListingShape()
        self.requests: list[Received] = []
        self._sorted: list[dict[str, Any]] | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- test controls ---------------------------------------------------------------

    def fail_next(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def reset(self) -> None:
        """Forget the requests received, and drop the delay and any fault still queued;
        the runs stay as they are, and so does the listing's shape.
        """
        self.requests.clear()
        self.delay = 0.0
        self.faults.clear()

    def add_run(self, run: dict[str, Any]) -> None:
        self.runs.append(run)
        if len(self.runs) > MAX_RUNS:
            # A demo API left running for weeks keeps its newest runs only.
            self.runs[:] = self._newest_first()[: MAX_RUNS // 2]
        self._sorted = None

    def update_run(self, run_id: str, **changes: Any) -> None:
        for run in self.runs:
            if run["id"] == run_id:
                run.update(changes)
                self._sorted = None
                return
        raise KeyError(run_id)

    def requests_to(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    # -- server ----------------------------------------------------------------------

    def web_app(self) -> web.Application:
        application = web.Application()
        application.router.add_get("/runs", self._list)
        application.router.add_get("/runs/{run_id}", self._one)
        return application

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        # Idle connections are kept KEEPALIVE_SECONDS (aiohttp's default is 75 s): longer
        # than httpx keeps them (5 s), so a client never sends on a connection being closed.
        self._runner = web.AppRunner(self.web_app(), access_log=None, keepalive_timeout=KEEPALIVE_SECONDS)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.url

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SampleCdeApi:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- handlers --------------------------------------------------------------------

    async def _gate(self, request: web.Request) -> web.Response | None:
        """Record the request, then apply delay, scripted faults and authentication."""
        self.requests.append(Received(request.method, request.path, dict(request.query),
                                      request.headers.get("Authorization")))
        if len(self.requests) > MAX_RECORDED:
            del self.requests[: MAX_RECORDED // 2]
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.faults:
            fault = self.faults.popleft()
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if isinstance(fault.body, dict):
                return web.json_response(fault.body, status=fault.status, headers=fault.headers)
            return web.Response(text=fault.body, status=fault.status, headers=fault.headers,
                                content_type="text/html")
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response(
                {"message": "You have to be authorized to access this resource."}, status=401
            )
        return None

    async def _list(self, request: web.Request) -> web.Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        query = request.query
        errors: dict[str, str] = {}
        offset = _integer(query.get("from", "0"), "from", errors, minimum=0,
                          message="This value should be either positive or zero.")
        shape = self.shape
        limit = _integer(query.get("limit", "100"), "limit", errors, minimum=1,
                         message=f"This value should be between 1 and {shape.max_limit}.")
        if limit is not None and limit > shape.max_limit:
            errors["limit"] = f"This value should be between 1 and {shape.max_limit}."
        for name in _UUID_FILTERS:
            if name in query and not _is_uuid(query[name]):
                errors[name] = "This is not a valid UUID."
        if "site-id" in query:
            _integer(query["site-id"], "site-id", errors, minimum=1,
                     message="This value should be a positive integer.")
        if errors:
            return web.json_response({"message": "Bad request.", "errors": errors}, status=400)
        assert offset is not None and limit is not None
        matching = [run for run in self._newest_first() if _matches(run, query)]
        if shape.oldest_first:
            matching.reverse()
        size = min(limit, shape.page_cap or limit)
        page = matching[offset: offset + size]
        metadata: dict[str, Any] = {"from": offset, "count": len(page), "next": None}
        if shape.tells_limit:
            metadata["limit"] = size
        if shape.tells_total:
            metadata["total"] = len(matching)
        return web.json_response({
            "data": page,
            "metadata": metadata,
            "message": "successful operation",
            "resource": "run",
        })

    async def _one(self, request: web.Request) -> web.Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        run_id = request.match_info["run_id"]
        for run in self.runs:
            if run["id"] == run_id:
                return web.json_response({"message": "run", "data": run})
        return web.json_response({"message": "Run not found."}, status=404)

    def _newest_first(self) -> list[dict[str, Any]]:
        # Sorted once per change, not per request: benchmarks hit this hard.
        if self._sorted is None or len(self._sorted) != len(self.runs):
            # str(): a run with an odd `created-at` (a test's) must not break the sort.
            self._sorted = sorted(self.runs, key=lambda run: str(run.get("created-at") or ""),
                                  reverse=True)
        return self._sorted


def _integer(value: str, name: str, errors: dict[str, str], *, minimum: int, message: str) -> int | None:
    try:
        number = int(value)
    except ValueError:
        errors[name] = "This value should be of type int."
        return None
    if number < minimum:
        errors[name] = message
        return None
    return number


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _matches(run: dict[str, Any], query: Any) -> bool:
    return all(str(run.get(name)) == query[name] for name in FILTERS if name in query)


async def keep_producing(api: SampleCdeApi, history: Any, every: float) -> None:
    """Add one new run to `api` every `every` seconds, for ever (cancel to stop)."""
    while True:
        await asyncio.sleep(every)
        api.add_run(history.tick())


def reference_runs() -> list[dict[str, Any]]:
    """The four runs of the API reference page's example."""
    path = Path(__file__).with_name("reference_runs.json")
    runs: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["data"]
    return runs
