"""The stand-in's Socket Mode: the app's WebSocket at /socket, envelopes sent over it and
the acks that come back.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from aiohttp import WSMsgType, web

from tests.standins.slack.payloads import APP_ID, block_actions_payload, slash_command_payload
from tests.standins.slack.records import EnvelopeResult
from tests.standins.slack.response_urls import ResponseUrls

JsonDict = dict[str, Any]


class SocketMode(ResponseUrls):
    """Slack's side of a Socket Mode connection."""

    @property
    def socket_open(self) -> bool:
        """True while at least one app WebSocket is open."""
        return any(not ws.closed for ws in self._sockets)

    async def wait_connected(self, timeout: float = 10.0, *, connections: int = 1) -> None:
        """Wait until an app WebSocket is open and ``connections`` were made in total."""
        await self._wait_until(
            lambda: self.socket_open and self.socket_connections >= connections,
            timeout,
            lambda: (
                f"expected an open Socket Mode connection (#{connections}); "
                f"connections so far: {self.socket_connections}, open: {self.socket_open}; "
                f"apps.connections.open answers: {[c.status for c in self.calls_to('apps.connections.open')]}"
            ),
        )

    async def send_envelope(self, type_: str, payload: JsonDict, timeout: float = 5.0) -> EnvelopeResult:
        """Send an envelope over the current WebSocket and wait for the app's ack."""
        ws = self._current_socket()
        envelope_id = str(uuid.uuid4())
        envelope: JsonDict = {
            "envelope_id": envelope_id,
            "type": type_,
            "payload": payload,
            "accepts_response_payload": True,
        }
        fut: asyncio.Future[JsonDict] = asyncio.get_running_loop().create_future()
        self._pending_acks[envelope_id] = fut
        started = time.monotonic()
        try:
            await ws.send_json(envelope)
            ack = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise AssertionError(
                f"no ack for {type_} envelope {envelope_id} within {timeout}s; "
                f"messages from the app so far: {self.socket_received}"
            ) from None
        finally:
            self._pending_acks.pop(envelope_id, None)
        return EnvelopeResult(
            envelope_id=envelope_id,
            type=type_,
            payload=payload,
            ack=ack,
            ack_payload=ack.get("payload"),
            ack_seconds=time.monotonic() - started,
        )

    async def send_slash_command(
        self,
        text: str,
        user_id: str = "U0001",
        channel_id: str = "C0001",
        timeout: float = 5.0,
    ) -> tuple[EnvelopeResult, str]:
        """Send a slash command envelope; return the ack and the command's response_url."""
        response_url = self.new_response_url(channel_id=channel_id, user_id=user_id)
        payload = slash_command_payload(
            text,
            response_url=response_url,
            user_id=user_id,
            user_name=self._user_name(user_id),
            channel_id=channel_id,
            channel_name=self._channel_name(channel_id),
        )
        result = await self.send_envelope("slash_commands", payload, timeout=timeout)
        return result, response_url

    async def send_block_action(
        self,
        action_id: str,
        value: str | None = None,
        user_id: str = "U0001",
        channel_id: str = "C0001",
        message: JsonDict | None = None,
        response_url: str | None = None,
        container: JsonDict | None = None,
        timeout: float = 5.0,
    ) -> tuple[EnvelopeResult, str]:
        """Send a button click (``interactive`` envelope); return the ack and response_url."""
        if response_url is None:
            response_url = self.new_response_url(
                channel_id=channel_id,
                message_ts=message.get("ts") if message is not None else None,
                user_id=user_id,
            )
        payload = block_actions_payload(
            action_id,
            value,
            response_url=response_url,
            user_id=user_id,
            user_name=self._user_name(user_id),
            channel_id=channel_id,
            channel_name=self._channel_name(channel_id),
            message=message,
            container=container,
        )
        result = await self.send_envelope("interactive", payload, timeout=timeout)
        return result, response_url

    def _current_socket(self) -> web.WebSocketResponse:
        for ws in reversed(self._sockets):
            if not ws.closed:
                return ws
        raise AssertionError(
            f"no open Socket Mode connection (connections so far: {self.socket_connections})"
        )

    async def _handle_socket(self, request: web.Request) -> web.WebSocketResponse:
        # autoping answers the client's "sdk-ping-pong:<t>" pings with the same data,
        # which is how slack_sdk's SocketModeClient decides the link is alive.
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self.socket_connections += 1
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": sum(1 for s in self._sockets if not s.closed),
                "debug_info": {
                    "host": "applink-standin",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": APP_ID},
            }
        )
        self._notify()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._received(msg.data)
        finally:
            self._sockets.remove(ws)
            self._notify()
        return ws

    def _received(self, text: str) -> None:
        """One message from the app: recorded, and the ack it may be handed over."""
        try:
            data = json.loads(text)
        except ValueError:
            data = {"_raw": text}
        self.socket_received.append(data)
        fut = self._pending_acks.get(data.get("envelope_id", "")) if isinstance(data, dict) else None
        if fut is not None and not fut.done():
            fut.set_result(data)
        self._notify()
