"""The door of `/slack/events`: a request's signature is checked before anything of it is
read, and what is refused is answered in a word, never logged above DEBUG.

Bolt parses a body before its own signature check, so that unsigned junk (`{garbage`,
`payload=[1]`, bytes that are not UTF-8, a timestamp that is not a number) raised inside
Bolt and answered 500 with a traceback. Here the signature is checked on the raw bytes
first (401), a signed body that cannot be read is a 400, and only what passes reaches Bolt
(which checks the signature once more, as it always does).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body

__all__ = ["MAX_BODY_BYTES", "BoltLogRedaction", "SignedRequests"]

log = logging.getLogger(__name__)

# Slack's requests are a few kilobytes; a click on a long message or a large modal stays
# well under this. Larger is refused with a 413 before it is read.
MAX_BODY_BYTES = 1024 * 1024
# How old a request may be, as Slack advises and Bolt checks: a replayed request is refused.
MAX_AGE_SECONDS = 60 * 5
_TIMESTAMP_DIGITS = 12


class SignedRequests:
    """Hands Bolt only the requests signed with the signing secret, and readable."""

    def __init__(self, app: AsyncApp, signing_secret: str) -> None:
        self._app = app
        self._secret = signing_secret.encode()

    async def handle(self, request: web.Request) -> web.Response:
        """The answer to one POST to `/slack/events`."""
        body = await request.read()  # aiohttp raises 413 beyond the app's client_max_size
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not self.signed(body, timestamp, signature):
            log.debug("refused a request to %s: signature or timestamp missing or wrong", request.path)
            return _refusal(401, "invalid request")
        bolt_request = _readable(body, request)
        if bolt_request is None:
            log.debug("refused a signed request to %s: its body cannot be read", request.path)
            return _refusal(400, "unreadable request")
        return await to_aiohttp_response(await self._app.async_dispatch(bolt_request))

    def signed(self, body: bytes, timestamp: str, signature: str, now: float | None = None) -> bool:
        """Slack's v0 signature (as `slack_sdk.signature.SignatureVerifier` computes it),
        over the raw bytes, so that nothing unsigned is ever decoded; a timestamp that is not
        a recent whole number of seconds fails.
        """
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= _TIMESTAMP_DIGITS):
            return False
        if abs((time.time() if now is None else now) - int(timestamp)) > MAX_AGE_SECONDS:
            return False
        base = b"v0:" + timestamp.encode() + b":" + body
        expected = "v0=" + hmac.new(self._secret, base, hashlib.sha256).hexdigest()
        return signature.isascii() and hmac.compare_digest(expected, signature)


# What a body Slack sends always holds one of: a slash command, an event or a URL check
# (`type`), an interaction (`payload`), or Slack's SSL check.
_DISPATCHABLE = frozenset({"command", "type", "payload", "ssl_check"})


def _readable(body: bytes, request: web.Request) -> AsyncBoltRequest | None:
    """The Bolt request of a signed body, or None when it is not a JSON object (or a form
    whose `payload` is one) in UTF-8, which Bolt could not dispatch.
    """
    try:
        text = body.decode("utf-8")
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        parsed: Any = parse_body(text, content_type or None)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(parsed, dict) or not _DISPATCHABLE & parsed.keys():
        return None  # nothing Bolt could dispatch (it would log it as unhandled, at WARNING)
    return AsyncBoltRequest(body=text, query=request.query_string, headers=dict(request.headers))


def _refusal(status: int, error: str) -> web.Response:
    return web.json_response({"error": error}, status=status)


class BoltLogRedaction(logging.Filter):
    """Keeps request bodies out of Bolt's log: a body holds Slack's verification token and
    the `response_url`, with which anyone may post to the channel.

    Bolt logs a refused request's whole body at INFO, and the body of a request a
    middleware left unanswered at WARNING. The first is dropped (the door above already
    said at DEBUG that it refused); the second keeps its words and loses the body. Matched
    on Bolt's own wording, so no other record is touched.
    """

    REFUSED = "Invalid request signature detected ("
    UNANSWERED = "without providing a response for the request ("

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(self.REFUSED):
            return False
        cut = message.find(self.UNANSWERED)
        if cut >= 0:
            record.msg = message[:cut] + "without providing a response for the request"
            record.args = None
        return True
