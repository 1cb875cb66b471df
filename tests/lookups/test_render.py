"""bot/render.py: Block Kit answers within Slack's limits, escaped, with working buttons."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.cde.errors import (
    CdeBadRequest,
    CdeConnectionError,
    CdeError,
    CdeForbidden,
    CdeNotFound,
    CdeProtocolError,
    CdeRateLimited,
    CdeServerError,
    CdeTimeout,
    CdeUnauthorized,
)
from bot.cde.models import Run, RunFilter, RunPage
from bot.lookups import render
from bot.lookups.paging import Drift
from bot.lookups.runs import no_links, web_links
from bot.query import MAX_LIMIT, Anchor, Help, ListRuns, QueryError, ShowRun, parse
from bot.slack.message import Message, internal_error
from tests.helpers.blockkit import assert_escaped, assert_fits, buttons, walk
from tests.helpers.fixtures import load_fixture

RUN_ID = "019e16f3-bfc3-7993-bd03-ad2089ed3b04"
CONNECTOR_ID = "019e16f3-bfa8-7390-9e63-3354f9aa2939"

# ------------------------------------------------------------------------------ helpers


def texts(message: Message, kind: str = "mrkdwn") -> list[str]:
    """The text of every text object of one kind (`mrkdwn` or `plain_text`)."""
    return [obj["text"] for obj in walk(message.blocks) if obj.get("type") == kind and "text" in obj]


def fields_of(message: Message) -> dict[str, str]:
    """`*Label*\\nvalue` fields of section blocks, as label -> value."""
    result = {}
    for block in message.blocks:
        for item in block.get("fields") or []:
            label, _, value = item["text"].partition("\n")
            result[label.strip("*")] = value
    return result


def make_run(body: dict[str, Any] | None = None, **changes: Any) -> Run:
    data = dict(body or {"id": RUN_ID})
    data.update(changes)
    return Run.model_validate(data)


def make_page(runs: list[Run], *, offset: int = 0, total: int | None = None) -> RunPage:
    return RunPage.model_validate({
        "data": [run.model_dump(by_alias=True, mode="json") for run in runs],
        "metadata": {"from": offset, "limit": 100, "count": len(runs), "total": total, "next": None},
    })


@pytest.fixture
def runs(reference_runs: list[dict[str, Any]]) -> list[Run]:
    return [Run.model_validate(body) for body in reference_runs]


@pytest.fixture
def failed_run(runs: list[Run]) -> Run:
    return next(run for run in runs if run.failed)


EVIL = {"site-name": "<!channel>", "project-name": "<https://evil|innocent>", "account-name": "a & b"}

# ------------------------------------------------------------------------------ runs_list


def test_runs_list_of_the_reference_page(runs_list_body: dict[str, Any]) -> None:
    page = RunPage.model_validate(runs_list_body)
    query = ListRuns(RunFilter(site_id=1001))
    message = render.runs_list(page, query)
    assert_fits(message)
    body = "\n".join(texts(message))
    assert "`site:1001`" in body
    assert "Showing 1–4 of 4" in body
    assert "1 failed run on this page" in body
    for run in page.runs:
        assert f"`{run.id}`" in body
    assert "Site 2 (1002)" in body
    assert "exit code 1" in body
    assert message.text.startswith("CDE runs site:1001")
    assert "1 failed" in message.text
    assert ":red_circle: *failed*" in body
    assert ":large_green_circle: finished" in body
    # One section and one context per run, plus the heading, the summary and the buttons.
    assert len(message.blocks) == 2 + 2 * len(page.runs) + 1


def test_runs_list_shows_date_tokens_and_durations(runs: list[Run]) -> None:
    message = render.runs_list(make_page(runs[:1], total=1), ListRuns())
    body = "\n".join(texts(message))
    started = datetime.fromisoformat("2025-10-29T13:09:16+01:00")
    finished = datetime.fromisoformat("2025-10-29T13:14:16+01:00")
    assert (f"<!date^{int(started.timestamp())}^{{date_short_pretty}} {{time}}|2025-10-29 12:09 UTC>"
            in body)
    assert f"<!date^{int(finished.timestamp())}^" in body
    assert "took 5m 00s" in body


def test_runs_list_of_nothing(runs: list[Run]) -> None:
    message = render.runs_list(make_page([], total=0), ListRuns(RunFilter(state="failed")))
    assert_fits(message)
    body = "\n".join(texts(message))
    assert "No runs match" in body
    assert "/cde help" in body
    assert "state:failed" in message.text
    assert "runs_page_next" not in buttons(message)
    assert "runs_page_prev" not in buttons(message)


def test_runs_list_past_the_end_offers_the_way_back(runs: list[Run]) -> None:
    query = ListRuns(offset=50, limit=10)
    message = render.runs_list(make_page([], offset=50, total=4), query)
    assert_fits(message)
    body = "\n".join(texts(message))
    assert "There are 4 runs; `from:50` is past the end" in body
    assert "fewer filters" not in body and "No runs at" not in body
    found = buttons(message)
    assert set(found) == {"runs_page_last"}  # the last page is the first: one way back
    assert parse(found["runs_page_last"]["value"]) == ListRuns(offset=0, limit=10)


def test_runs_list_fallback_counts_without_names(runs: list[Run]) -> None:
    message = render.runs_list(make_page(runs, total=4), ListRuns())
    assert message.text == "CDE runs (all): showing 1–4 of 4, 1 failed"


def test_unknown_state_is_shown_neutrally(runs: list[Run]) -> None:
    running = make_run(runs[0].model_dump(by_alias=True, mode="json"), state="running", **{"exit-code": None,
                       "finished-at": None})
    message = render.runs_list(make_page([running], total=1), ListRuns())
    assert_fits(message)
    body = "\n".join(texts(message))
    assert ":white_circle: running" in body
    assert "red_circle" not in body
    assert "failed" not in body
    assert "failed" not in message.text
    detail = render.run_detail(running)
    assert_fits(detail)
    detail_body = "\n".join(texts(detail))
    assert ":white_circle: running" in detail_body
    assert "red_circle" not in detail_body
    assert "failed" not in detail.text
    assert fields_of(detail)["Finished"] == "—"
    assert fields_of(detail)["Duration"] == "—"


def test_unknown_state_with_markup_is_escaped() -> None:
    message = render.run_detail(make_run(state="<!here>"))
    assert "&lt;!here&gt;" in "\n".join(texts(message))
    for text in [*texts(message), message.text]:
        assert "<!here>" not in text


def test_a_run_with_only_an_id_renders_dashes() -> None:
    run = make_run()
    listing = render.runs_list(make_page([run], total=1), ListRuns())
    assert_fits(listing)
    body = "\n".join(texts(listing))
    assert f"`{RUN_ID}`" in body
    assert "_no state_" in body
    assert "*Site* — · *Project* — · *Account* —" in body
    assert "unknown connector" in body
    assert "Started —" in body

    detail = render.run_detail(run)
    assert_fits(detail)
    shown = fields_of(detail)
    for label in ("Site", "Project", "Account", "Process", "Exit code", "Started", "Finished", "Duration",
                  "Created", "Docker image", "Container API version", "CLI command", "Registered secrets",
                  "Authentications"):
        assert shown[label] == "—", label
    assert shown["Connector"] == "unknown connector"
    assert "runs_page_recent" not in buttons(detail)
    assert RUN_ID in detail.text


def test_a_shared_run_with_only_an_id_has_valid_blocks() -> None:
    # Nothing to click: no connector and site, no web link, and already shared. Slack rejects an
    # actions block without elements, so there must be none.
    message = render.run_detail(make_run(), shared_by="U123")
    assert_fits(message)
    assert buttons(message) == {}
    assert all(block["type"] != "actions" for block in message.blocks)


def test_a_full_page_of_long_names_stays_within_slack_limits(reference_runs: list[dict[str, Any]]) -> None:
    long = "<&>" * 3000
    runs = [
        make_run(reference_runs[i % 4], id=f"019e16f3-bfc3-7993-bd03-{i:012d}",
                 **{"site-name": "S" + long, "project-name": "P" + long, "account-name": "A" + long,
                    "connector-version": "9" * 500})
        for i in range(MAX_LIMIT)
    ]
    run_filter = RunFilter(site_id=1001, state="failed", connector_id=CONNECTOR_ID,
                           connector_version="1" * 64)
    query = ListRuns(run_filter, offset=20, limit=MAX_LIMIT)
    message = render.runs_list(make_page(runs, offset=20, total=10_000), query)
    assert_fits(message)
    assert len(message.blocks) <= 50
    assert {"runs_page_prev", "runs_page_next", "runs_share"} <= set(buttons(message))
    for text in texts(message):
        assert_escaped(text)
    shared = render.runs_list(make_page(runs, offset=20, total=10_000), query, shared_by="U1")
    assert_fits(shared)


def test_a_run_with_huge_fields_stays_within_slack_limits(failed_run: Run) -> None:
    body = failed_run.model_dump(by_alias=True, mode="json") | {
        "site-name": "x & y " * 1000,
        "container-api-docker-image": "<img>" * 1000,
        "container-api-version-constraint": "&" * 3000,
        "cli-command": {"argv": ["--flag=`&<>`"] * 500},
        "connector-setup-config": {"k" * 50: "<v> & ```" * 100, "n": list(range(2000))},
    }
    message = render.run_detail(make_run(body), links=web_links("https://cde.example.com/runs/{run_id}"))
    assert_fits(message)
    for text in texts(message):
        assert_escaped(text)
    header = texts(message, "plain_text")[0]
    assert header.startswith("🔴 Failed run on x & y x & y")


# ------------------------------------------------------------------------------ pagination


@pytest.fixture
def page_of_ten(reference_runs: list[dict[str, Any]]) -> list[Run]:
    return [make_run(reference_runs[i % 4], id=f"019e16f3-bfc3-7993-bd03-{i:012d}") for i in range(10)]


def test_first_page_has_next_but_no_previous(page_of_ten: list[Run]) -> None:
    query = ListRuns(RunFilter(state="failed"), offset=0, limit=10)
    message = render.runs_list(make_page(page_of_ten, total=25), query)
    assert_fits(message)
    found = buttons(message)
    assert "runs_page_prev" not in found
    assert parse(found["runs_page_next"]["value"]) == ListRuns(RunFilter(state="failed"), offset=10, limit=10)
    assert parse(found["runs_share"]["value"]) == query


def test_middle_page_has_both(page_of_ten: list[Run]) -> None:
    query = ListRuns(RunFilter(site_id=1001), offset=10, limit=10)
    found = buttons(render.runs_list(make_page(page_of_ten, offset=10, total=25), query))
    assert parse(found["runs_page_prev"]["value"]) == ListRuns(RunFilter(site_id=1001), offset=0, limit=10)
    assert parse(found["runs_page_next"]["value"]) == ListRuns(RunFilter(site_id=1001), offset=20, limit=10)


def test_last_page_has_previous_but_no_next(page_of_ten: list[Run]) -> None:
    query = ListRuns(offset=20, limit=10)
    message = render.runs_list(make_page(page_of_ten[:5], offset=20, total=25), query)
    found = buttons(message)
    assert "runs_page_next" not in found
    assert parse(found["runs_page_prev"]["value"]) == ListRuns(offset=10, limit=10)
    assert "Showing 21–25 of 25" in "\n".join(texts(message))


def test_next_follows_a_short_page_from_the_api(page_of_ten: list[Run]) -> None:
    # The API may return fewer runs than asked for; the next page starts after those shown.
    query = ListRuns(offset=0, limit=20)
    found = buttons(render.runs_list(make_page(page_of_ten[:7], total=30), query))
    assert parse(found["runs_page_next"]["value"]) == ListRuns(offset=7, limit=20)


def test_previous_from_an_odd_offset_never_goes_below_zero(page_of_ten: list[Run]) -> None:
    query = ListRuns(offset=3, limit=10)
    found = buttons(render.runs_list(make_page(page_of_ten, offset=3, total=13), query))
    assert parse(found["runs_page_prev"]["value"]) == ListRuns(offset=0, limit=10)
    assert "runs_page_next" not in found


def test_without_a_total_there_is_no_next_page(page_of_ten: list[Run]) -> None:
    page = RunPage.model_validate({"data": [r.model_dump(by_alias=True, mode="json") for r in page_of_ten],
                                   "metadata": None})
    found = buttons(render.runs_list(page, ListRuns()))
    assert "runs_page_next" not in found


def test_a_shared_list_has_no_share_button_and_says_who_shared(runs: list[Run]) -> None:
    message = render.runs_list(make_page(runs, total=4), ListRuns(), shared_by="U123")
    assert_fits(message)
    assert "runs_share" not in buttons(message)
    assert "shared by <@U123>" in "\n".join(texts(message))


# ------------------------------------------------------------------------------ escaping


def test_outside_text_in_a_runs_list_is_escaped(failed_run: Run) -> None:
    run = make_run(failed_run.model_dump(by_alias=True, mode="json") | EVIL)
    message = render.runs_list(make_page([run], total=1), ListRuns())
    body = "\n".join(texts(message))
    assert "&lt;!channel&gt;" in body
    assert "&lt;https://evil|innocent&gt;" in body
    assert "a &amp; b" in body
    for text in [*texts(message), message.text]:
        assert "<!channel>" not in text
        assert "<https://evil" not in text
        assert "a & b" not in text
        assert_escaped(text)


def test_outside_text_in_a_run_detail_is_escaped(failed_run: Run) -> None:
    run = make_run(failed_run.model_dump(by_alias=True, mode="json") | EVIL)
    message = render.run_detail(run)
    body = "\n".join(texts(message))
    assert "&lt;!channel&gt;" in body
    assert "&lt;https://evil|innocent&gt;" in body
    assert "a &amp; b" in body
    for text in texts(message):
        assert "<!channel>" not in text
        assert "<https://evil" not in text
        assert_escaped(text)


def test_the_fallback_text_of_a_run_detail_is_escaped(failed_run: Run) -> None:
    # Slack reads the fallback text as mrkdwn (notifications): <!channel> there pings everyone.
    run = make_run(failed_run.model_dump(by_alias=True, mode="json") | EVIL)
    message = render.run_detail(run)
    assert "<!channel>" not in message.text
    assert "&lt;!channel&gt;" in message.text
    assert_escaped(message.text)


def test_the_header_is_plain_text() -> None:
    # plain_text is never parsed for mentions or links, so the name shows as typed there.
    message = render.run_detail(make_run(state="failed", **{"site-name": "<!channel>"}))
    header = message.blocks[0]
    assert header["type"] == "header"
    assert header["text"]["type"] == "plain_text"
    assert header["text"]["text"] == "🔴 Failed run on <!channel>"


# Mostly mrkdwn's control characters and link/mention syntax, plus any other character.
name_text = st.text(alphabet=st.sampled_from("<>&|!@#:/` *_~") | st.characters(codec="utf-8"), max_size=60)


@settings(max_examples=100, deadline=None)
@given(site=name_text, project=name_text, account=name_text, state=st.none() | name_text,
       version=st.none() | name_text, image=st.none() | name_text, shared_by=st.none() | st.just("U42"))
def test_any_outside_text_is_escaped_and_within_limits(
    site: str, project: str, account: str, state: str | None, version: str | None, image: str | None,
    shared_by: str | None,
) -> None:
    run = make_run({"id": RUN_ID, "connector-id": CONNECTOR_ID, "site-id": 1001}, state=state,
                   **{"site-name": site, "project-name": project, "account-name": account,
                      "connector-version": version, "container-api-docker-image": image,
                      "cli-command": site, "connector-setup-config": {"x": project}})
    for message in (render.runs_list(make_page([run], total=30), ListRuns(), shared_by=shared_by),
                    render.run_detail(run, shared_by=shared_by)):
        assert_fits(message)
        for text in texts(message):
            assert_escaped(text)
        assert_escaped(message.text)


# ------------------------------------------------------------------------------ run_detail


def test_run_detail_of_a_reference_run(failed_run: Run) -> None:
    message = render.run_detail(failed_run)
    assert_fits(message)
    shown = fields_of(message)
    assert shown["Site"] == "Site 2 (1002)"
    assert shown["Project"] == "Project 2 (650)"
    assert shown["Account"] == "Account 2 (748)"
    assert shown["Connector"] == "`019e16f3-bf9c-7485-b60b-ff3407921934` v1.0.1"
    assert shown["Process"] == f"`{failed_run.process_id}`"
    assert shown["Exit code"] == "1"
    assert shown["Duration"] == "5m 00s"
    for label in ("Started", "Finished", "Created"):
        assert shown[label].startswith("<!date^"), label
    assert shown["Created"].endswith("|2025-01-02 10:00 UTC>")
    assert texts(message, "plain_text")[0] == "🔴 Failed run on Site 2"
    assert message.text == f"CDE run {failed_run.id}: failed on Site 2 (exit code 1)"


def test_run_detail_buttons(failed_run: Run) -> None:
    links = web_links("https://cde.example.com/sites/{site_id}/runs/{run_id}")
    found = buttons(render.run_detail(failed_run, links=links))
    recent = parse(found["runs_page_recent"]["value"])
    assert recent == ListRuns(RunFilter(connector_id=failed_run.connector_id, site_id=1002))
    assert parse(found["runs_share"]["value"]) == ShowRun(failed_run.id)
    assert found["run_open"]["url"] == f"https://cde.example.com/sites/1002/runs/{failed_run.id}"
    shared = buttons(render.run_detail(failed_run, links=links, shared_by="U9"))
    assert "runs_share" not in shared
    assert "runs_page_recent" in shared


def test_web_links_quote_values_and_none_without_template() -> None:
    run = make_run(id="a/b|c>d")
    assert web_links("https://x.test/runs/{run_id}")(run) == "https://x.test/runs/a%2Fb%7Cc%3Ed"
    assert web_links(None)(run) is None
    assert no_links(run) is None


def test_runs_list_links_into_the_web_ui(runs: list[Run]) -> None:
    links = web_links("https://cde.example.com/runs/{run_id}")
    body = "\n".join(texts(render.runs_list(make_page(runs, total=4), ListRuns(), links=links)))
    for run in runs:
        assert f"<https://cde.example.com/runs/{run.id}|Open in CDE>" in body


def test_secrets_and_authentications_are_counted_never_shown(failed_run: Run) -> None:
    secrets = ["SECRET-VALUE-ONE", {"name": "API_KEY", "value": "hunter2-secret"}]
    auths = {"oauth": {"access_token": "auth-secret-token"}}
    run = make_run(failed_run.model_dump(by_alias=True, mode="json"),
                   **{"registered-secrets": secrets, "authentications": auths})
    message = render.run_detail(run)
    assert_fits(message)
    sent = json.dumps(message.as_kwargs())
    for secret in ("SECRET-VALUE-ONE", "hunter2-secret", "auth-secret-token", "API_KEY", "access_token"):
        assert secret not in sent
    shown = fields_of(message)
    assert shown["Registered secrets"] == "2 entries (not shown)"
    assert shown["Authentications"] == "1 entry (not shown)"
    listing = json.dumps(render.runs_list(make_page([run], total=1), ListRuns()).as_kwargs())
    assert "hunter2-secret" not in listing
    assert "auth-secret-token" not in listing


def test_a_secret_given_as_a_string_is_not_shown() -> None:
    message = render.run_detail(make_run(**{"registered-secrets": "s3cr3t-string", "authentications": []}))
    assert "s3cr3t-string" not in json.dumps(message.as_kwargs())
    assert fields_of(message)["Registered secrets"] == "set (not shown)"
    assert fields_of(message)["Authentications"] == "0 entries (not shown)"


def test_setup_config_is_shown_as_escaped_json() -> None:
    message = render.run_detail(make_run(**{"connector-setup-config": {"feed": "<a> & ```b```"}}))
    assert_fits(message)
    block = next(t for t in texts(message) if t.startswith("*Connector setup config*"))
    assert '"feed": "&lt;a&gt; &amp; ' in block
    assert block.count("```") == 2


# ------------------------------------------------------------------------------ help & errors


@pytest.mark.parametrize(("topic", "has_runs", "has_run"), [(None, True, True), ("runs", True, False),
                                                            ("run", False, True), ("bogus", True, True)])
def test_help_message(topic: str | None, has_runs: bool, has_run: bool) -> None:
    message = render.help_message(Help(topic))
    assert_fits(message)
    body = "\n".join(texts(message))
    assert ("*List runs*" in body) is has_runs
    assert ("*Show one run*" in body) is has_run
    if has_runs:
        for key in ("site:", "state:", "connector:", "version:", "process:", "id:", "limit:", "from:"):
            assert f"`{key}" in body
        assert "/cde runs site:1001 state:failed" in body
    for text in texts(message):
        assert_escaped(text)
    assert "/cde" in message.text


@pytest.mark.parametrize("text", ["runs state:faild", "runs site:abc", "run nope", "deploy", "runs x y",
                                  "runs &lt;!channel&gt;", "runs &lt;https://evil|innocent&gt;",
                                  "runs state:" + "&lt;" * 300])
def test_query_error(text: str) -> None:
    error = parse(text)
    assert isinstance(error, QueryError)
    message = render.query_error(error)
    assert_fits(message)
    body = "\n".join(texts(message))
    assert body.startswith(":warning: ")
    if error.usage:
        assert "Usage: " in body
    for text_ in [*texts(message), message.text]:
        assert "<!channel>" not in text_
        assert "<https://evil" not in text_
        assert_escaped(text_)


def test_query_error_names_the_word() -> None:
    message = render.query_error(QueryError("`state:faild`: did you mean `state:failed`?", "`/cde runs`"))
    body = "\n".join(texts(message))
    assert "`state:faild`" in body
    assert "`state:failed`" in body
    assert "state:faild" in message.text


def _api_message(error: CdeError, reference: str | None = None) -> tuple[str, str]:
    message = render.api_error(error, reference=reference)
    assert_fits(message)
    assert len(message.blocks) == 1
    body = "\n".join(texts(message))
    assert not message.text.startswith(":"), "the fallback has no leading emoji"
    return body, message.text


def test_api_error_401_names_the_token_setting() -> None:
    body, text = _api_message(CdeUnauthorized(load_fixture("runs-list-401.json")["message"]))
    assert "`CDE_API_TOKEN`" in body
    assert "CDE_API_TOKEN" in text


def test_api_error_403_says_access_denied() -> None:
    body, _ = _api_message(CdeForbidden(load_fixture("runs-list-403.json")["message"]))
    assert "Access denied" in body


def test_api_error_400_maps_api_fields_back_to_the_users_words() -> None:
    body, _ = _api_message(CdeBadRequest("Bad request.", {
        "site-id": "This value should be positive.",
        "connector-id": "Not a UUID.",
        "connector-version": "Too long.",
        "process-id": "Not a UUID.",
        "state": "Unknown <state> & more",
    }))
    assert "• `site`: This value should be positive." in body
    assert "• `connector`: Not a UUID." in body
    assert "• `version`: Too long." in body
    assert "• `process`: Not a UUID." in body
    assert "• `state`: Unknown &lt;state&gt; &amp; more" in body
    for api_word in ("site-id", "connector-id", "connector-version", "process-id"):
        assert api_word not in body


def test_api_error_400_from_the_reference_example() -> None:
    fixture = load_fixture("runs-list-400.json")
    body, _ = _api_message(CdeBadRequest(fixture["message"], fixture["errors"]))
    assert "• `from`: This value should be either positive or zero." in body


def test_api_error_400_without_field_errors_shows_the_message() -> None:
    body, _ = _api_message(CdeBadRequest("Bad <request>.", {}))
    assert "Bad &lt;request&gt;." in body


def test_api_error_400_with_an_unknown_field_is_escaped() -> None:
    body, _ = _api_message(CdeBadRequest("Bad request.", {"<!channel>": "x"}))
    assert "`&lt;!channel&gt;`: x" in body


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (CdeServerError("the CDE API answered HTTP 502", status=502), "unavailable"),
        (CdeConnectionError("connection refused"), "unavailable"),
        (CdeTimeout("timed out"), "did not answer in time"),
        (CdeRateLimited("slow down", 30), "slow down"),
        (CdeProtocolError("not JSON"), "cannot read"),
        (CdeError("odd"), "failed"),
    ],
)
def test_api_error_for_unavailability_includes_the_reference(error: CdeError, words: str) -> None:
    body, text = _api_message(error, reference="ab12cd34ef")
    assert words in body
    assert "`ab12cd34ef`" in body
    assert "ab12cd34ef" in text
    _, without = _api_message(error)
    assert "Reference" not in without


def test_api_error_404_for_a_list_points_at_the_api_url() -> None:
    # A missing run has its own answer (run_not_found); a 404 here means the list is missing.
    body, _ = _api_message(CdeNotFound("Not found."))
    assert "CDE_API_URL" in body


def test_api_error_does_not_echo_internal_exception_text() -> None:
    body, text = _api_message(CdeServerError("upstream said <html>Bearer sk-secret</html>", status=502),
                              reference="r1")
    assert "sk-secret" not in body
    assert "sk-secret" not in text


def test_run_not_found() -> None:
    message = render.run_not_found(RUN_ID)
    assert_fits(message)
    body = "\n".join(texts(message))
    assert f"`{RUN_ID}`" in body
    assert "/cde runs" in body
    assert RUN_ID in message.text


def test_internal_error() -> None:
    message = internal_error("ref-0042")
    assert_fits(message)
    body = "\n".join(texts(message))
    assert "`ref-0042`" in body
    assert "ref-0042" in message.text
    assert not message.text.startswith(":")


def test_message_refuses_more_than_fifty_blocks() -> None:
    with pytest.raises(ValueError, match="51 blocks"):
        Message("x", [{"type": "divider"}] * 51)
    assert len(Message("x", [{"type": "divider"}] * 50).blocks) == 50


# ------------------------------------------------------------------ wording of lists and runs


def test_an_empty_list_offers_no_share_and_no_paging() -> None:
    for query in (ListRuns(RunFilter(site_id=9)), ListRuns(), ListRuns(RunFilter(site_id=9), offset=30)):
        message = render.runs_list(make_page([], offset=query.offset, total=0), query)
        assert_fits(message)
        assert buttons(message) == {}, query


def test_try_fewer_filters_only_when_filters_matched_nothing() -> None:
    filtered = "\n".join(texts(render.runs_list(make_page([], total=0), ListRuns(RunFilter(site_id=9)))))
    assert "No runs match. Try fewer filters" in filtered
    unfiltered = render.runs_list(make_page([], total=0), ListRuns())
    assert "fewer filters" not in "\n".join(texts(unfiltered))
    assert "no runs the bot can see" in "\n".join(texts(unfiltered))


def test_past_the_end_names_the_count_and_offers_last_and_first_pages() -> None:
    query = ListRuns(RunFilter(state="failed"), offset=100000)
    message = render.runs_list(make_page([], offset=100000, total=37), query)
    body = "\n".join(texts(message))
    assert "There are 37 runs matching `state:failed`; `from:100000` is past the end" in body
    assert "`from:30`" in body
    assert "fewer filters" not in body and "No runs at" not in body
    found = buttons(message)
    assert set(found) == {"runs_page_last", "runs_page_first"}
    assert parse(found["runs_page_last"]["value"]) == query.page(30)
    assert parse(found["runs_page_first"]["value"]) == query.page(0)
    one = render.runs_list(make_page([], offset=5, total=1), ListRuns(offset=5))
    assert "There is 1 run; `from:5` is past the end" in "\n".join(texts(one))


def test_an_anchored_page_counts_newer_runs_and_offers_them(page_of_ten: list[Run]) -> None:
    anchor = Anchor(RUN_ID, 37)
    query = ListRuns(RunFilter(site_id=1001), offset=10, anchor=anchor)
    message = render.runs_list(make_page(page_of_ten, offset=10, total=37), query,
                               drift=Drift(newer=3))
    assert_fits(message)
    assert "Showing 11–20 of 37 · 3 newer runs since this list" in "\n".join(texts(message))
    found = buttons(message)
    assert parse(found["runs_page_newer"]["value"]) == ListRuns(RunFilter(site_id=1001))
    assert parse(found["runs_page_next"]["value"]) == query.page(20)
    assert parse(found["runs_page_prev"]["value"]) == query.page(0)
    assert parse(found["runs_share"]["value"]) == query
    quiet = render.runs_list(make_page(page_of_ten, offset=10, total=37), query)
    assert "runs_page_newer" not in buttons(quiet) and "newer run" not in "\n".join(texts(quiet))


def test_a_page_whose_list_moved_says_so(page_of_ten: list[Run]) -> None:
    message = render.runs_list(make_page(page_of_ten, offset=10, total=37), ListRuns(offset=10),
                               drift=Drift(moved=True))
    assert "runs may repeat or be skipped" in "\n".join(texts(message))


@pytest.mark.parametrize(("changes", "title"), [
    ({"state": "failed", "site-name": "Site 2"}, "🔴 Failed run on Site 2"),
    ({"state": "finished", "site-name": "Site 2"}, "🟢 Finished run on Site 2"),
    ({"state": "running", "site-name": "Site 2"}, "⚪ Run on Site 2 · running"),
    ({"state": None, "site-name": None, "site-id": 7}, "⚪ Run on site 7 · no state"),
    ({"state": "failed", "site-name": None, "site-id": None}, "🔴 Failed run on an unknown site"),
])
def test_the_run_title_reads_as_the_runs_state(changes: dict[str, Any], title: str) -> None:
    message = render.run_detail(make_run(**changes))
    header = texts(message, "plain_text")[0]
    assert header == title
    assert not header.startswith("Run failed")
