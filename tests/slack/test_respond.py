"""Answers Slack refuses are not lost silently: logged, and retried as plain text."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.webhook import WebhookResponse

from bot.slack.message import Message
from bot.slack.respond import reply


class FakeRespond:
    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, **kwargs: Any) -> WebhookResponse:
        self.calls.append(kwargs)
        status = self.statuses.pop(0)
        return WebhookResponse(url="http://x", status_code=status,
                               body="ok" if status == 200 else "invalid_blocks", headers={})


ANSWER = Message("3 runs", [{"type": "section", "text": {"type": "mrkdwn", "text": "3 runs"}}])


async def test_an_accepted_answer_is_sent_once() -> None:
    respond = FakeRespond(200)
    await reply(respond, ANSWER)  # type: ignore[arg-type]
    assert len(respond.calls) == 1 and respond.calls[0]["blocks"] == ANSWER.blocks


async def test_refused_blocks_are_retried_as_text(caplog: pytest.LogCaptureFixture) -> None:
    respond = FakeRespond(400, 200)
    await reply(respond, ANSWER, replace_original=False)  # type: ignore[arg-type]
    assert len(respond.calls) == 2
    assert "blocks" not in respond.calls[1] and respond.calls[1]["text"] == "3 runs"
    assert respond.calls[1]["replace_original"] is False
    assert "Slack refused an answer (HTTP 400: invalid_blocks)" in caplog.text


async def test_an_expired_url_is_logged_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    respond = FakeRespond(404)
    await reply(respond, ANSWER)  # type: ignore[arg-type]
    assert len(respond.calls) == 1
    assert "HTTP 404" in caplog.text
