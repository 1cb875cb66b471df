"""What the Slack stand-in records of the app's requests and answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]


@dataclass
class ApiCall:
    """One Web API request as the stand-in received and answered it."""

    method: str
    params: JsonDict
    headers: dict[str, str]
    time: float  # time.monotonic() at arrival
    status: int = 200
    response: JsonDict | str = field(default_factory=dict)
    injected: bool = False  # answered by fail_next()/fail_next_html()

    @property
    def ok(self) -> bool:
        """True when Slack would have accepted the call."""
        return isinstance(self.response, dict) and self.response.get("ok") is True


@dataclass
class ResponsePost:
    """One POST to a response_url."""

    url: str
    body: JsonDict
    time: float  # time.monotonic()
    status: int
    accepted: bool
    answer: str


@dataclass(frozen=True)
class EnvelopeResult:
    """What came back for one Socket Mode envelope."""

    envelope_id: str
    type: str
    payload: JsonDict
    ack: JsonDict
    ack_payload: JsonDict | None
    ack_seconds: float


@dataclass
class Fault:
    """How the stand-in answers one Web API call in place of Slack's own answer."""

    status: int
    retry_after: int | None
    error: str
    html: str | None
    channel: str | None = None  # only calls naming this channel (None: any call)


@dataclass
class ResponseUrl:
    """A response_url handed out: where its posts go, and every post made to it."""

    url: str
    channel_id: str | None
    message_ts: str | None
    user_id: str | None
    posts: list[ResponsePost] = field(default_factory=list)
