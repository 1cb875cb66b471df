"""Socket Mode: every envelope Slack sends is acknowledged, whether a listener wants it or not.

Bolt's handler acks only what a listener answered (status 200). An envelope no listener
matches (an event, a shortcut the bot has no use for) gets Bolt's 404 and no ack, so Slack
sends it again and again and finally reports the app as failing. Here such an envelope is
acked empty, and noted at DEBUG only: it is Slack's traffic, not the bot's concern.
"""

from __future__ import annotations

import logging
from time import time

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app, send_async_response
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.slack.client import redactor_of

__all__ = ["AckingSocketModeHandler"]

log = logging.getLogger(__name__)


class AckingSocketModeHandler(AsyncSocketModeHandler):
    """Bolt's Socket Mode handler, acking the envelopes no listener took as well."""

    async def handle(self, client: AsyncBaseSocketModeClient,
                     req: SocketModeRequest) -> None:
        """Dispatch one envelope to the app and ack it, answered or not."""
        start = time()
        bolt_response = await run_async_bolt_app(self.app, req)
        if bolt_response.status == 200:
            # An ack's content goes over the socket, not through the Web API client: it is
            # redacted here, with the same redactor.
            bolt_response.body = redactor_of(self.app.client).text(bolt_response.body)
            await send_async_response(client, req, bolt_response, start)
            return
        log.debug("acked a %s envelope no listener took (Bolt answered %d)", req.type, bolt_response.status)
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
