"""What Slack sends an app: slash command and button-click payloads, their HTTP-mode
encodings and the request signature, with the identities of the stand-in's workspace.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

TEAM_ID = "T0001"
TEAM_DOMAIN = "test"
APP_ID = "A0001"
BOT_ID = "B0001"
BOT_USER_ID = "U0BOT"
BOT_USER_NAME = "cde-bot"
VERIFICATION_TOKEN = "verification-token"
WORKSPACE_URL = f"https://{TEAM_DOMAIN}.slack.com"

JsonDict = dict[str, Any]


def sign_request(signing_secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack adds to an HTTP-mode request: ``v0=`` HMAC-SHA256 of ``v0:{ts}:{body}``."""
    ts = int(time.time()) if timestamp is None else timestamp
    base = b"v0:" + str(ts).encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={digest}"}


def _new_trigger_id() -> str:
    """A trigger_id shaped like Slack's."""
    return f"{secrets.randbelow(10**10)}.{secrets.randbelow(10**10)}.{secrets.token_hex(16)}"


def slash_command_payload(
    text: str,
    *,
    response_url: str,
    user_id: str = "U0001",
    user_name: str = "alice",
    channel_id: str = "C0001",
    channel_name: str = "general",
    command: str = "/cde",
) -> dict[str, str]:
    """A slash command payload; every value is a string, as in Slack's form post."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM_ID,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": _new_trigger_id(),
    }


def _find_element(blocks: list[JsonDict], action_id: str) -> tuple[JsonDict, JsonDict] | None:
    """(block, element) in ``blocks`` whose element has ``action_id``."""
    for block in blocks:
        candidates: list[JsonDict] = list(block.get("elements") or [])
        for key in ("accessory", "element"):
            if isinstance(block.get(key), dict):
                candidates.append(block[key])
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return block, element
    return None


def _clicked(action_id: str, value: str | None, element: JsonDict, block_id: str | None,
             now: float) -> JsonDict:
    """The ``actions[0]`` of a click on ``element`` (empty when the button is not known)."""
    text = (element.get("text") or {}).get("text") or "Button"
    action: JsonDict = {
        "action_id": action_id,
        "block_id": block_id or secrets.token_urlsafe(4)[:5],
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "type": element.get("type", "button"),
        "action_ts": f"{now:.6f}",
    }
    value = element.get("value") if value is None else value
    if value is not None:
        action["value"] = value
    if "style" in element:
        action["style"] = element["style"]
    return action


def block_actions_payload(
    action_id: str,
    value: str | None = None,
    *,
    response_url: str,
    user_id: str = "U0001",
    user_name: str = "alice",
    channel_id: str = "C0001",
    channel_name: str = "general",
    message: JsonDict | None = None,
    container: JsonDict | None = None,
) -> JsonDict:
    """A ``block_actions`` payload for a button click.

    If ``message`` has blocks containing a button with ``action_id``, its block_id, text
    and (unless given) value are taken from there, as Slack would.
    """
    now = time.time()
    msg = copy.deepcopy(message) if message is not None else None
    element: JsonDict = {}
    block_id = None
    if msg is not None:
        msg.setdefault("type", "message")
        msg.setdefault("ts", f"{now:.6f}")
        found = _find_element(msg.get("blocks") or [], action_id)
        if found is not None:
            block, element = found
            block_id = block.get("block_id")
    if container is None:
        container = {
            "type": "message",
            "message_ts": msg["ts"] if msg is not None else f"{now:.6f}",
            "channel_id": channel_id,
            "is_ephemeral": msg is None,
        }
    payload: JsonDict = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": TEAM_ID},
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": container,
        "trigger_id": _new_trigger_id(),
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [_clicked(action_id, value, element, block_id, now)],
    }
    if msg is not None:
        payload["message"] = msg
    return payload


def encode_slash_command(payload: dict[str, str]) -> bytes:
    """HTTP-mode body of a slash command (form-encoded fields)."""
    return urlencode(payload).encode()


def encode_interaction(payload: JsonDict) -> bytes:
    """HTTP-mode body of an interaction (form field ``payload=<json>``)."""
    return urlencode({"payload": json.dumps(payload)}).encode()
