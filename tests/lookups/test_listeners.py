"""Path 1's listeners in process: `/cde runs`, `/cde run`, help, and the buttons on answers."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.demo.api import Fault
from bot.demo.runs import make_run
from bot.query import ListRuns, parse
from tests.helpers.bolt import (
    BoltScenario,
    all_text,
    bolt_scenario,
    button,
)
from tests.helpers.sample import EXTRA_FAILED, FAILED_RUN
from tests.standins.slack import block_kit_errors


@pytest.fixture
async def bolt(tmp_path: Path) -> AsyncIterator[BoltScenario]:
    async with bolt_scenario(tmp_path) as scenario:
        yield scenario


def commands_counted(bolt: BoltScenario, command: str, outcome: str) -> float:
    text = bolt.metrics.render().decode()
    pattern = rf'cde_bot_commands_total{{command="{command}",outcome="{outcome}"}} (\S+)'
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


async def test_runs_lookup_answers_through_response_url(bolt: BoltScenario) -> None:
    sent = await bolt.command("runs site:1002 state:failed")
    assert sent.status == 200 and sent.body == ""
    [answer] = bolt.answers(sent)
    assert answer["response_type"] == "ephemeral"
    assert FAILED_RUN in all_text(answer)
    assert "Showing 1–1 of 1" in all_text(answer)
    assert block_kit_errors(answer["blocks"]) == []
    assert answer["text"]
    [request] = bolt.cde.requests_to("/runs")
    assert request.query == {"site-id": "1002", "state": "failed", "from": "0", "limit": "10"}
    assert commands_counted(bolt, "runs", "ok") == 1


async def test_help_and_mistakes_answer_in_the_ack_without_calling_the_api(bolt: BoltScenario) -> None:
    sent = await bolt.command("help")
    assert sent.status == 200
    assert "/cde runs" in sent.body and sent.json()["blocks"]
    assert sent.json()["response_type"] == "ephemeral"
    sent = await bolt.command("runs state:faild site:1001")
    assert sent.status == 200
    assert "did you mean `state:failed`?" in sent.body
    sent = await bolt.command("runs site:<!channel>")
    assert "&lt;!channel&gt;" in sent.body and "<!channel>" not in sent.body
    assert bolt.cde.requests == []
    assert bolt.slack.responses(sent.response_url) == []
    assert commands_counted(bolt, "help", "ok") == 1
    assert commands_counted(bolt, "runs", "user_error") == 2


async def test_run_detail_and_not_found(bolt: BoltScenario) -> None:
    [detail] = bolt.answers(await bolt.command(f"run {FAILED_RUN}"))
    text = all_text(detail)
    assert "Site 2" in text and "Exit code" in text and "019e16f3-bfb8-7f0c-8d26-b7d408c0b623" in text
    missing = "019e16f3-0000-7000-8000-000000000000"
    [answer] = bolt.answers(await bolt.command(f"run {missing}"))
    assert f"Run `{missing}` was not found" in all_text(answer)


async def test_next_and_previous_page_through_results(bolt: BoltScenario) -> None:
    total = EXTRA_FAILED + 0  # site 1001 has no failed run among the reference runs
    [first] = bolt.answers(await bolt.command("runs site:1001 state:failed"))
    assert f"Showing 1–10 of {total}" in all_text(first)
    next_button = button(first, "runs_page_next")
    parsed = parse(next_button["value"])
    assert isinstance(parsed, ListRuns) and parsed.offset == 10

    sent = await bolt.click_ephemeral("runs_page_next", first)
    assert sent.status == 200 and sent.body == ""
    [second] = bolt.answers(sent)
    assert second["replace_original"] is True
    assert f"Showing 11–20 of {total}" in all_text(second)
    # Previous leads back to the first page of the same (anchored) list.
    previous = parse(button(second, "runs_page_prev")["value"])
    assert isinstance(previous, ListRuns) and previous == parsed.page(0)
    assert previous.to_text().startswith("runs site:1001 state:failed")

    [third] = bolt.answers(await bolt.click_ephemeral("runs_page_next", second))
    assert f"Showing 21–{total} of {total}" in all_text(third)
    with pytest.raises(AssertionError):
        button(third, "runs_page_next")
    assert commands_counted(bolt, "button", "ok") == 2


async def test_next_click_replaces_a_short_list(bolt: BoltScenario) -> None:
    [first] = bolt.answers(await bolt.command("runs site:1001 state:failed limit:5"))
    assert f"Showing 1–5 of {EXTRA_FAILED}" in all_text(first)
    [second] = bolt.answers(await bolt.click_ephemeral("runs_page_next", first))
    assert second["replace_original"] is True
    assert f"Showing 6–10 of {EXTRA_FAILED}" in all_text(second)


async def test_share_in_channel_posts_visibly(bolt: BoltScenario) -> None:
    [detail] = bolt.answers(await bolt.command(f"run {FAILED_RUN}"))
    [shared] = bolt.answers(await bolt.click_ephemeral("runs_share", detail, user="U0002"))
    assert shared["response_type"] == "in_channel"
    assert "shared by <@U0002>" in all_text(shared)
    assert FAILED_RUN in all_text(shared)
    assert FAILED_RUN in all_text(bolt.slack.messages("C0001"))


async def test_paging_a_shared_list_answers_the_clicker_alone(bolt: BoltScenario) -> None:
    [mine] = bolt.answers(await bolt.command("runs site:1001 state:failed"))
    [shared] = bolt.answers(await bolt.click_ephemeral("runs_share", mine))
    assert shared["response_type"] == "in_channel"
    # Someone in the channel clicks Next on the shared list: it must stay as it is.
    sent = await bolt.click("runs_page_next", {**shared, "ts": "1700000000.000200"}, user="U0002")
    [page] = bolt.answers(sent)
    assert page["replace_original"] is False and page["response_type"] == "ephemeral"
    assert "Showing 11–20" in all_text(page)


async def test_an_error_while_paging_keeps_the_list(bolt: BoltScenario) -> None:
    [first] = bolt.answers(await bolt.command("runs site:1001 state:failed"))
    bolt.cde.fail_next(Fault(403, {"message": "Access denied for user."}))
    [answer] = bolt.answers(await bolt.click_ephemeral("runs_page_next", first))
    assert answer["replace_original"] is False
    assert "Access denied" in all_text(answer)
    assert commands_counted(bolt, "button", "api_error") == 1


async def test_a_button_without_a_lookup_is_explained(bolt: BoltScenario) -> None:
    sent = await bolt.click("runs_page_next", value="subscribe site:1001")
    [answer] = bolt.answers(sent)
    assert "carries no lookup" in all_text(answer)
    assert bolt.cde.requests == []
    assert commands_counted(bolt, "button", "user_error") == 1


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault(401, {"message": "You have to be authorized to access this resource."}), "CDE_API_TOKEN"),
        (Fault(403, {"message": "Access denied for user."}), "Access denied"),
        (Fault(400, {"message": "Bad request.", "errors": {"site-id": "Unknown site."}}),
         "`site`: Unknown site."),
    ],
)
async def test_api_refusals_are_explained(bolt: BoltScenario, fault: Fault, expected: str) -> None:
    bolt.cde.fail_next(fault)
    [answer] = bolt.answers(await bolt.command("runs site:1001"))
    assert expected in all_text(answer)
    assert len(bolt.cde.requests) == 1  # refusals are not retried
    assert commands_counted(bolt, "runs", "api_error") == 1


async def test_unavailable_api_gives_a_reference_found_in_the_log(
    bolt: BoltScenario, caplog: pytest.LogCaptureFixture
) -> None:
    html = Fault(502, "<html><body><h1>502 Bad Gateway</h1></body></html>")
    bolt.cde.fail_next(html, html, html)
    [answer] = bolt.answers(await bolt.command("runs"))
    reference = re.search(r"Reference: `([0-9a-f]+)`", all_text(answer))
    assert reference, all_text(answer)
    assert len(bolt.cde.requests) == 3  # retried, within bounds
    assert reference.group(1) in caplog.text


async def test_transient_failure_is_retried_invisibly(bolt: BoltScenario) -> None:
    bolt.cde.fail_next(Fault(429, {"message": "Too many requests"}, headers={"Retry-After": "1"}))
    [answer] = bolt.answers(await bolt.command("runs site:1002"))
    assert FAILED_RUN in all_text(answer)
    assert len(bolt.cde.requests) == 2


async def test_open_link_is_acked_and_counted(bolt: BoltScenario) -> None:
    sent = await bolt.click("run_open", value=None)
    assert sent.status == 200 and sent.body == ""
    assert bolt.answers(sent) == [] and bolt.cde.requests == []
    assert commands_counted(bolt, "button", "ok") == 1


async def test_recent_runs_answer_beside_the_notice(bolt: BoltScenario) -> None:
    notice = {"ts": "1700000000.000300", "text": "Failed", "blocks": [{
        "type": "actions", "block_id": "b1",
        "elements": [{"type": "button", "action_id": "incident_recent", "value": "runs site:1002",
                      "text": {"type": "plain_text", "text": "Recent runs"}}],
    }]}
    sent = await bolt.click("incident_recent", notice, user="U0002")
    [recent] = bolt.answers(sent)
    assert recent["response_type"] == "ephemeral" and recent.get("replace_original") is False
    assert "Showing 1–" in all_text(recent) and "`site:1002`" in all_text(recent)
    assert bolt.slack.messages("C0001") == []  # nothing posted in the channel


# ------------------------------------------------------------------ anchored paging


def new_failure(bolt: BoltScenario, minutes: int) -> dict[str, object]:
    """A failed run of site 1001 created `minutes` after the sample's newest one."""
    newest = max(datetime.fromisoformat(str(r["created-at"])) for r in bolt.cde.runs)
    run = make_run(state="failed", site_id=1001, started_at=newest + timedelta(minutes=minutes),
                   created_at=newest + timedelta(minutes=minutes))
    bolt.cde.add_run(run)
    return run


def run_ids(answer: dict[str, object]) -> list[str]:
    """The ids of the runs listed, in order (each row starts with its state and id)."""
    return re.findall(r"circle: [^`]*? · `([0-9a-f-]{36})`", all_text(answer))


async def test_next_after_new_runs_arrived_repeats_nothing(bolt: BoltScenario) -> None:
    [first] = bolt.answers(await bolt.command("runs site:1001 state:failed"))
    assert f"Showing 1–10 of {EXTRA_FAILED}" in all_text(first)
    for minutes in (1, 2, 3):
        new_failure(bolt, minutes)
    before = len(bolt.cde.requests_to("/runs"))
    [second] = bolt.answers(await bolt.click_ephemeral("runs_page_next", first))
    text = all_text(second)
    # Still the list the person started from: same total, the next ten, nothing repeated.
    assert f"Showing 11–20 of {EXTRA_FAILED}" in text
    assert "3 newer runs since this list" in text
    assert not set(run_ids(first)) & set(run_ids(second))
    # A later page after arrivals: the page as it is, the anchor's place, the shifted page.
    assert len(bolt.cde.requests_to("/runs")) - before == 3

    [third] = bolt.answers(await bolt.click_ephemeral("runs_page_next", second))
    assert f"Showing 21–{EXTRA_FAILED} of {EXTRA_FAILED}" in all_text(third)
    assert not set(run_ids(third)) & (set(run_ids(first)) | set(run_ids(second)))
    assert len(run_ids(first) + run_ids(second) + run_ids(third)) == EXTRA_FAILED

    # Previous goes back to the very first page of the same list.
    [back] = bolt.answers(await bolt.click_ephemeral("runs_page_prev", second))
    assert run_ids(back) == run_ids(first)
    assert "3 newer runs since this list" in all_text(back)


async def test_the_newer_runs_button_shows_a_fresh_first_page(bolt: BoltScenario) -> None:
    [first] = bolt.answers(await bolt.command("runs site:1001 state:failed"))
    arrived = [new_failure(bolt, minutes)["id"] for minutes in (1, 2)]
    [second] = bolt.answers(await bolt.click_ephemeral("runs_page_next", first))
    newer = button(second, "runs_page_newer")
    assert newer["value"] == "runs site:1001 state:failed"  # no anchor: the list as it is now
    [fresh] = bolt.answers(await bolt.click_ephemeral("runs_page_newer", second))
    assert fresh["replace_original"] is True
    assert f"Showing 1–10 of {EXTRA_FAILED + 2}" in all_text(fresh)
    assert run_ids(fresh)[:2] == [arrived[1], arrived[0]]
    assert "newer run" not in all_text(fresh)


async def test_paging_with_nothing_new_costs_few_requests(bolt: BoltScenario) -> None:
    [first] = bolt.answers(await bolt.command("runs site:1001 state:failed"))
    assert len(bolt.cde.requests_to("/runs")) == 1
    [second] = bolt.answers(await bolt.click_ephemeral("runs_page_next", first))
    assert "newer run" not in all_text(second)
    # The page itself, and one run to check that the anchor still opens the list.
    assert len(bolt.cde.requests_to("/runs")) == 3
    assert bolt.cde.requests_to("/runs")[-1].query["limit"] == "1"
    [back] = bolt.answers(await bolt.click_ephemeral("runs_page_prev", second))
    assert run_ids(back) == run_ids(first)
    assert len(bolt.cde.requests_to("/runs")) == 4  # the first page holds its own anchor


async def test_an_api_that_lists_oldest_first_pages_as_before(bolt: BoltScenario) -> None:
    oldest_first = sorted(bolt.cde.runs, key=lambda run: str(run.get("created-at")))
    bolt.cde._newest_first = lambda: oldest_first  # type: ignore[method-assign]
    [first] = bolt.answers(await bolt.command("runs site:1001 state:failed"))
    next_value = parse(button(first, "runs_page_next")["value"])
    # The order is not newest first, so there is nothing to anchor on: plain paging.
    assert isinstance(next_value, ListRuns) and next_value.anchor is None
    [second] = bolt.answers(await bolt.click_ephemeral("runs_page_next", first))
    assert f"Showing 11–20 of {EXTRA_FAILED}" in all_text(second)
    assert len(bolt.cde.requests_to("/runs")) == 2


async def test_a_lost_anchor_falls_back_to_the_plain_page_and_says_so(bolt: BoltScenario) -> None:
    [first] = bolt.answers(await bolt.command("runs site:1001 state:failed"))
    # The newest run of the list stops matching (say, it was retried and finished), and
    # another arrives: the total is unchanged, but the anchor is not where it was.
    bolt.cde.update_run(run_ids(first)[0], state="finished")
    new_failure(bolt, 1)
    [second] = bolt.answers(await bolt.click_ephemeral("runs_page_next", first))
    text = all_text(second)
    assert f"Showing 11–20 of {EXTRA_FAILED}" in text
    assert "runs may repeat or be skipped" in text
    assert "newer run" not in text
    following = parse(button(second, "runs_page_next")["value"])
    assert isinstance(following, ListRuns) and following.anchor is None


async def test_a_page_past_the_end_says_how_many_and_offers_the_way_back(bolt: BoltScenario) -> None:
    [answer] = bolt.answers(await bolt.command("runs site:1001 state:failed from:100000"))
    text = all_text(answer)
    assert f"There are {EXTRA_FAILED} runs matching" in text
    assert "`from:100000` is past the end" in text
    assert "fewer filters" not in text and "runs_share" not in text
    last = parse(button(answer, "runs_page_last")["value"])
    assert isinstance(last, ListRuns) and last.offset == 20
    [page] = bolt.answers(await bolt.click_ephemeral("runs_page_last", answer))
    assert f"Showing 21–{EXTRA_FAILED} of {EXTRA_FAILED}" in all_text(page)
    first = parse(button(answer, "runs_page_first")["value"])
    assert isinstance(first, ListRuns) and first.offset == 0


async def test_an_empty_answer_offers_no_share_and_no_paging(bolt: BoltScenario) -> None:
    [answer] = bolt.answers(await bolt.command("runs site:4242"))
    text = all_text(answer)
    assert "No runs match" in text and "Try fewer filters" in text
    assert "runs_share" not in text and "runs_page" not in text


async def test_runs_by_project_points_to_subscribe(bolt: BoltScenario) -> None:
    sent = await bolt.command("runs project:650")
    assert "cannot filter by project" in sent.body
    assert "`/cde subscribe project:650`" in sent.body
    assert bolt.cde.requests == []


ODD_RUN = "019e16f3-0dd0-7000-8000-00000000dd00"


async def test_an_odd_run_is_shown_as_far_as_it_fits_in_lists_and_alone(bolt: BoltScenario) -> None:
    odd = make_run(state="failed", run_id=ODD_RUN, site_id=1003)
    odd |= {"exit-code": "ERR", "site-name": ["<!channel>"], "started-at": "soon"}
    bolt.cde.add_run(odd)
    bolt.cde.add_run({**make_run(state="failed", site_id=1003), "id": 7.5})
    [listed] = bolt.answers(await bolt.command("runs site:1003"))
    text = all_text(listed)
    [line] = [t for t in text.split("\\n") if "unreadable:" in t] or [""]
    assert ODD_RUN in text and all(name in line for name in ("exit-code", "site-name", "started-at"))
    assert "1 entry of this page could not be read" in text
    assert block_kit_errors(listed["blocks"]) == []
    [detail] = bolt.answers(await bolt.command(f"run {ODD_RUN}"))
    text = all_text(detail)
    assert "could not fully read" in text and "exit-code" in text and "ERR" in text
    assert "<!channel>" not in json.dumps(detail)  # the odd value is escaped
    assert block_kit_errors(detail["blocks"]) == []
