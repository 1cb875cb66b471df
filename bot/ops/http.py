"""The bot's HTTP endpoints: `/healthz`, `/readyz` and `/metrics` in both modes, for the
orchestrator and for monitoring, and in HTTP mode `/slack/events`, where Slack POSTs.

Every answer is redacted of the configured secrets on its way out (`redacting`): a readiness
detail or an ack's content quoting a CDE error never shows the token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import payload, web
from aiohttp.typedefs import Handler, Middleware
from slack_bolt.async_app import AsyncApp

from bot.config import Settings
from bot.ops.metrics import Metrics
from bot.ops.readiness import ADVISORY, Check, Readiness, is_ready
from bot.redact import Redactor, for_settings
from bot.slack.client import EVENTS_PATH
from bot.slack.gate import MAX_BODY_BYTES, SignedRequests
from bot.store.base import Store


@dataclass
class Health:
    """What `/healthz` reports."""

    ready: bool = False
    details: dict[str, str] = field(default_factory=dict)


class Served(Protocol):
    """What the endpoints read from the running bot (`bot.server.Bot`)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def app(self) -> AsyncApp: ...

    @property
    def store(self) -> Store: ...

    @property
    def health(self) -> Health: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def readiness(self) -> Readiness | None: ...


def http_app(bot: Served) -> web.Application:
    """The aiohttp application: `/healthz`, `/readyz` and `/metrics` always,
    `/slack/events` in HTTP mode.
    """
    # Every endpoint but `/slack/events` is a GET; Slack's POSTs are small (a 413 beyond).
    application = web.Application(client_max_size=MAX_BODY_BYTES,
                                  middlewares=[redacting(for_settings(bot.settings))])

    async def healthz(request: web.Request) -> web.Response:
        status = 200 if bot.health.ready else 503
        return web.json_response({"ready": bot.health.ready, **bot.health.details}, status=status)

    async def readyz(request: web.Request) -> web.Response:
        assert bot.readiness is not None
        checks = await bot.readiness.checks(bot.store)
        if not bot.health.ready:  # starting or stopping: Slack is not (or no longer) ours
            checks["slack"] = Check(False, "not serving")
        ready = is_ready(checks)
        degraded = sorted(name for name, check in checks.items() if not check.ok and name in ADVISORY)
        body = {"ready": ready, "degraded": degraded,
                "checks": {name: check.as_dict() for name, check in checks.items()}}
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=bot.metrics.render(), headers={"Content-Type": Metrics.CONTENT_TYPE})

    application.router.add_get("/healthz", healthz)
    application.router.add_get("/readyz", readyz)
    application.router.add_get("/metrics", metrics)
    if not bot.settings.socket_mode:
        secret = bot.settings.slack_signing_secret
        door = SignedRequests(bot.app, secret.get_secret_value() if secret else "")
        application.router.add_post(EVENTS_PATH, door.handle)
    return application


def redacting(redactor: Redactor) -> Middleware:
    """Middleware: each answer's body with every configured secret redacted."""

    @web.middleware
    async def redact(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if not isinstance(response, web.Response) or not redactor:
            return response
        # Bytes, or a body given as text: Bolt's ack (`to_aiohttp_response`) hands aiohttp a
        # str, which it keeps as a `StringPayload`, not as bytes.
        body = response.body
        charset = response.charset or "utf-8"
        # surrogateescape: a body that is not in its charset goes out byte for byte as it came.
        if isinstance(body, bytes | bytearray):
            text = bytes(body).decode(charset, "surrogateescape")
        elif isinstance(body, payload.BytesPayload):
            text = body.decode(charset, "surrogateescape")
        else:
            return response
        clean = redactor.text(text)
        if clean != text:
            response.body = clean.encode(charset, "surrogateescape")
        return response

    return redact
