"""End to end over HTTP: signed requests to the real bot's `/slack/events`."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import aiohttp
import pytest

from bot.demo.api import Fault, SampleCdeApi
from bot.query import parse
from tests.helpers.bot_process import SIGNING_SECRET, BotProcess
from tests.helpers.sample import EXTRA_FAILED
from tests.standins.slack import (
    SlackStandIn,
    block_actions_payload,
    block_kit_errors,
    encode_interaction,
    encode_slash_command,
    sign_request,
    slash_command_payload,
)

FAILED_RUN = "019e16f3-bfb8-7ed8-8d26-b7d40818d146"


async def post(bot: BotProcess, body: bytes, *, secret: str = SIGNING_SECRET,
               timestamp: int | None = None) -> tuple[int, str, float]:
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               **sign_request(secret, body, timestamp)}
    started = time.monotonic()
    async with aiohttp.ClientSession() as session, session.post(
        f"{bot.url}/slack/events", data=body, headers=headers
    ) as response:
        return response.status, await response.text(), time.monotonic() - started


async def command(bot: BotProcess, slack: SlackStandIn, text: str, **kwargs: Any) -> tuple[int, str, str]:
    url = slack.new_response_url(channel_id="C0001")
    status, body, _ = await post(bot, encode_slash_command(
        slash_command_payload(text, response_url=url)), **kwargs)
    return status, body, url


EPHEMERAL = {"type": "message", "message_ts": "1700000000.000001", "channel_id": "C0001",
             "is_ephemeral": True}


def click_ephemeral(action_id: str, answer: dict[str, Any], response_url: str,
                    **kwargs: Any) -> dict[str, Any]:
    """A click on a button of an ephemeral answer, as Slack sends it."""
    return block_actions_payload(action_id, response_url=response_url, message=answer,
                                 container=EPHEMERAL, **kwargs)


def all_text(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False)


def button(message: dict[str, Any], action_prefix: str) -> dict[str, Any]:
    for block in message.get("blocks", []):
        for element in block.get("elements", []):
            if str(element.get("action_id", "")).startswith(action_prefix):
                return element
    raise AssertionError(f"no {action_prefix} button in {all_text(message)}")


async def test_runs_lookup_answers_through_response_url(http_bot: BotProcess, slack: SlackStandIn,
                                                         cde: SampleCdeApi) -> None:
    status, body, url = await command(http_bot, slack, "runs site:1002 state:failed")
    assert status == 200 and body == ""
    [answer] = await slack.wait_for_response(url)
    assert answer["response_type"] == "ephemeral"
    assert FAILED_RUN in all_text(answer)
    assert "Showing 1–1 of 1" in all_text(answer)
    assert block_kit_errors(answer["blocks"]) == []
    assert answer["text"]
    [request] = cde.requests_to("/runs")
    assert request.query == {"site-id": "1002", "state": "failed", "from": "0", "limit": "10"}


async def test_forged_signature_is_refused(http_bot: BotProcess, slack: SlackStandIn,
                                           cde: SampleCdeApi) -> None:
    status, _, url = await command(http_bot, slack, "runs", secret="not-the-signing-secret")
    assert status == 401
    stale = int(time.time()) - 600
    status, _, url2 = await command(http_bot, slack, "runs", timestamp=stale)
    assert status == 401
    await asyncio.sleep(0.5)
    assert slack.response_posts(url) == [] and slack.response_posts(url2) == []
    assert cde.requests == []


async def test_ack_within_three_seconds_while_the_api_is_slow(http_bot: BotProcess, slack: SlackStandIn,
                                                               cde: SampleCdeApi) -> None:
    cde.delay = 5.0
    url = slack.new_response_url(channel_id="C0001")
    status, _, elapsed = await post(http_bot, encode_slash_command(
        slash_command_payload("runs state:failed", response_url=url)))
    assert status == 200
    assert elapsed < 3.0, f"ack took {elapsed:.2f}s"
    # The API call was already under way when the ack went back, and the answer follows it.
    assert slack.responses(url) == []
    [answer] = await slack.wait_for_response(url, timeout=15)
    assert "Showing 1–10 of" in all_text(answer)


async def test_next_and_previous_page_through_results(http_bot: BotProcess, slack: SlackStandIn) -> None:
    total = EXTRA_FAILED + 0  # site 1001 has no failed run among the reference runs
    _, _, url = await command(http_bot, slack, "runs site:1001 state:failed")
    [first] = await slack.wait_for_response(url)
    assert f"Showing 1–10 of {total}" in all_text(first)
    next_button = button(first, "runs_page_next")
    assert parse(next_button["value"]).offset == 10

    click_url = slack.new_response_url(channel_id="C0001")
    payload = click_ephemeral("runs_page_next", first, click_url)
    status, _, _ = await post(http_bot, encode_interaction(payload))
    assert status == 200
    [second] = await slack.wait_for_response(click_url)
    assert second["replace_original"] is True
    assert f"Showing 11–20 of {total}" in all_text(second)
    assert button(second, "runs_page_prev")["value"] == "runs site:1001 state:failed"

    last_url = slack.new_response_url(channel_id="C0001")
    payload = click_ephemeral("runs_page_next", second, last_url)
    await post(http_bot, encode_interaction(payload))
    [third] = await slack.wait_for_response(last_url)
    assert f"Showing 21–{total} of {total}" in all_text(third)
    with pytest.raises(AssertionError):
        button(third, "runs_page_next")


async def test_share_in_channel_posts_visibly(http_bot: BotProcess, slack: SlackStandIn) -> None:
    _, _, url = await command(http_bot, slack, f"run {FAILED_RUN}")
    [detail] = await slack.wait_for_response(url)
    share_url = slack.new_response_url(channel_id="C0001")
    payload = click_ephemeral("runs_share", detail, share_url, user_id="U0002")
    await post(http_bot, encode_interaction(payload))
    [shared] = await slack.wait_for_response(share_url)
    assert shared["response_type"] == "in_channel"
    assert "shared by <@U0002>" in all_text(shared)
    assert FAILED_RUN in all_text(shared)


async def test_help_and_mistakes_answer_in_the_ack_without_calling_the_api(
    http_bot: BotProcess, slack: SlackStandIn, cde: SampleCdeApi
) -> None:
    status, body, _ = await command(http_bot, slack, "help")
    assert status == 200
    assert "/cde runs" in body and json.loads(body)["blocks"]
    status, body, _ = await command(http_bot, slack, "runs state:faild site:1001")
    assert status == 200
    assert "did you mean `state:failed`?" in body
    status, body, _ = await command(http_bot, slack, "runs site:<!channel>")
    assert "&lt;!channel&gt;" in body and "<!channel>" not in body
    assert cde.requests == []


async def test_run_detail_and_not_found(http_bot: BotProcess, slack: SlackStandIn) -> None:
    _, _, url = await command(http_bot, slack, f"run {FAILED_RUN}")
    [detail] = await slack.wait_for_response(url)
    text = all_text(detail)
    assert "Site 2" in text and "Exit code" in text and "019e16f3-bfb8-7f0c-8d26-b7d408c0b623" in text
    missing = "019e16f3-0000-7000-8000-000000000000"
    _, _, url = await command(http_bot, slack, f"run {missing}")
    [answer] = await slack.wait_for_response(url)
    assert f"Run `{missing}` was not found" in all_text(answer)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault(401, {"message": "You have to be authorized to access this resource."}), "CDE_API_TOKEN"),
        (Fault(403, {"message": "Access denied for user."}), "Access denied"),
        (Fault(400, {"message": "Bad request.", "errors": {"site-id": "Unknown site."}}),
         "`site`: Unknown site."),
    ],
)
async def test_api_refusals_are_explained(http_bot: BotProcess, slack: SlackStandIn, cde: SampleCdeApi,
                                          fault: Fault, expected: str) -> None:
    cde.fail_next(fault)
    _, _, url = await command(http_bot, slack, "runs site:1001")
    [answer] = await slack.wait_for_response(url)
    assert expected in all_text(answer)
    assert len(cde.requests) == 1  # refusals are not retried


async def test_unavailable_api_gives_a_reference_found_in_the_log(
    http_bot: BotProcess, slack: SlackStandIn, cde: SampleCdeApi
) -> None:
    html = Fault(502, "<html><body><h1>502 Bad Gateway</h1></body></html>")
    cde.fail_next(html, html, html)
    _, _, url = await command(http_bot, slack, "runs")
    [answer] = await slack.wait_for_response(url, timeout=20)
    reference = re.search(r"Reference: `([0-9a-f]+)`", all_text(answer))
    assert reference, all_text(answer)
    assert len(cde.requests) == 3  # retried, within bounds
    await asyncio.sleep(0.2)
    assert reference.group(1) in http_bot.log()


async def test_transient_failure_is_retried_invisibly(http_bot: BotProcess, slack: SlackStandIn,
                                                      cde: SampleCdeApi) -> None:
    cde.fail_next(Fault(429, {"message": "Too many requests"}, headers={"Retry-After": "1"}))
    _, _, url = await command(http_bot, slack, "runs site:1002")
    [answer] = await slack.wait_for_response(url, timeout=10)
    assert FAILED_RUN in all_text(answer)
    assert len(cde.requests) == 2


async def test_healthz_and_unknown_paths(http_bot: BotProcess) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{http_bot.url}/healthz") as response:
            assert response.status == 200
            assert (await response.json())["transport"] == "http"
        async with session.get(f"{http_bot.url}/slack/events") as response:
            assert response.status == 405


async def test_sigterm_finishes_in_flight_answers(http_bot: BotProcess, slack: SlackStandIn,
                                                  cde: SampleCdeApi) -> None:
    cde.delay = 1.5
    _, _, url = await command(http_bot, slack, "runs site:1002")
    assert await http_bot.stop() == 0
    assert len(slack.responses(url)) == 1


async def test_paging_a_shared_list_answers_the_clicker_alone(http_bot: BotProcess,
                                                              slack: SlackStandIn) -> None:
    _, _, url = await command(http_bot, slack, "runs site:1001 state:failed")
    [mine] = await slack.wait_for_response(url)
    share_url = slack.new_response_url(channel_id="C0001")
    await post(http_bot, encode_interaction(click_ephemeral("runs_share", mine, share_url)))
    [shared] = await slack.wait_for_response(share_url)
    assert shared["response_type"] == "in_channel"
    # Someone in the channel clicks Next on the shared list: it must stay as it is.
    click_url = slack.new_response_url(channel_id="C0001")
    payload = block_actions_payload("runs_page_next", response_url=click_url,
                                    message={**shared, "ts": "1700000000.000200"}, user_id="U0002")
    await post(http_bot, encode_interaction(payload))
    [page] = await slack.wait_for_response(click_url)
    assert page["replace_original"] is False and page["response_type"] == "ephemeral"
    assert "Showing 11–20" in all_text(page)


async def test_an_error_while_paging_keeps_the_list(http_bot: BotProcess, slack: SlackStandIn,
                                                    cde: SampleCdeApi) -> None:
    _, _, url = await command(http_bot, slack, "runs site:1001 state:failed")
    [first] = await slack.wait_for_response(url)
    cde.fail_next(Fault(403, {"message": "Access denied for user."}))
    click_url = slack.new_response_url(channel_id="C0001")
    await post(http_bot, encode_interaction(click_ephemeral("runs_page_next", first, click_url)))
    [answer] = await slack.wait_for_response(click_url)
    assert answer["replace_original"] is False
    assert "Access denied" in all_text(answer)
