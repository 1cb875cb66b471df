"""Lean stand-ins for the load benchmarks: a CDE API that answers after a set latency and
a catcher of `response_url` posts, both timing what they see.

The test suite's stand-ins record every request in detail; at hundreds of requests a
second that bookkeeping would weigh on the benchmark's own process, which shares the
machine with the process measured. These keep only the times a figure needs.
"""

from __future__ import annotations

import asyncio
import copy
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.demo.runs import make_run


@dataclass
class Answered:
    """When a `response_url` post arrived, and its body's size."""

    at: float
    size: int


@dataclass
class LeanCde:
    """GET /runs and /runs/{id}, each answered after `latency` seconds with one run (its
    id the one asked for) or a page of runs. `api_seconds[run_id]` is how long the API
    itself took for that run's request, from its arrival to its answer.
    """

    latency: float = 0.1
    api_seconds: dict[str, float] = field(default_factory=dict)
    requests: int = 0
    _template: dict[str, Any] = field(default_factory=lambda: make_run(state="failed"))

    def app(self) -> web.Application:
        application = web.Application()
        application.router.add_get("/runs", self._list)
        application.router.add_get("/runs/{run_id}", self._one)
        return application

    async def _one(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        self.requests += 1
        run_id = request.match_info["run_id"]
        await asyncio.sleep(self.latency)
        run = copy.copy(self._template)
        run["id"] = run_id
        response = web.json_response({"message": "run", "data": run})
        self.api_seconds[run_id] = time.monotonic() - arrived
        return response

    async def _list(self, request: web.Request) -> web.Response:
        self.requests += 1
        await asyncio.sleep(self.latency)
        offset = int(request.query.get("from", "0"))
        data = [self._template] if offset == 0 and "state" not in request.query else []
        return web.json_response({
            "data": data,
            "metadata": {"from": offset, "count": len(data), "total": len(data), "next": None},
            "message": "successful operation", "resource": "run",
        })


@dataclass
class ResponseCatcher:
    """POST /respond/{key}: records when each key's first answer came, and wakes whoever
    waits for it.
    """

    answers: dict[str, Answered] = field(default_factory=dict)
    _waiting: dict[str, asyncio.Future[Answered]] = field(default_factory=dict)

    def app(self) -> web.Application:
        application = web.Application()
        application.router.add_post("/respond/{key}", self._answer)
        return application

    def expect(self, key: str) -> asyncio.Future[Answered]:
        future: asyncio.Future[Answered] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        return future

    async def _answer(self, request: web.Request) -> web.Response:
        at = time.monotonic()
        body = await request.read()
        key = request.match_info["key"]
        answered = Answered(at, len(body))
        self.answers.setdefault(key, answered)
        future = self._waiting.pop(key, None)
        if future is not None and not future.done():
            future.set_result(answered)
        return web.Response(text="ok")


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve `app` on a free loopback port; its runner (to clean up) and base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"
