"""bot/query.py: the `/cde` command language."""

from __future__ import annotations

import re
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.cde.models import KNOWN_STATES, RunFilter
from bot.query import (
    DEFAULT_LIMIT,
    EXAMPLE_RUN,
    EXAMPLE_UUID,
    FILTER_KEYS,
    MAX_LIMIT,
    MAX_OFFSET,
    MAX_TEXT,
    USAGE,
    Anchor,
    Audit,
    Help,
    ListRuns,
    ListSubscriptions,
    QueryError,
    ShowRun,
    Subscribe,
    Unsubscribe,
    describe_filter,
    parse,
)

RUN_ID = "019e16f3-bfc3-7993-bd03-ad2089ed3b04"
CONNECTOR_ID = "019e16f3-bfa8-7390-9e63-3354f9aa2939"
PROCESS_ID = "019e16f3-bfc3-79c7-bd03-ad208a64bf34"

VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_~-]{0,63}$")
STATE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def runs(text: str) -> ListRuns:
    parsed = parse(text)
    assert isinstance(parsed, ListRuns), parsed
    return parsed


def error(text: str) -> QueryError:
    parsed = parse(text)
    assert isinstance(parsed, QueryError), parsed
    assert parsed.message
    return parsed


def assert_balanced_code_spans(message: str) -> None:
    """A user's word is echoed inside backticks; it must not unbalance them."""
    assert message.count("`") % 2 == 0, message


# ----------------------------------------------------------------------------- sub-commands


@pytest.mark.parametrize("text", ["", "   ", "help", "HELP", "-h", "--help", "?", "`help`"])
def test_help_without_topic(text: str) -> None:
    assert parse(text) == Help()


@pytest.mark.parametrize(("text", "topic"), [("help runs", "runs"), ("Help RUN", "run"),
                                              ("? runs", "runs"), ("help whatever", "whatever")])
def test_help_with_topic(text: str, topic: str) -> None:
    assert parse(text) == Help(topic)


def test_runs_without_filters_is_the_first_default_page() -> None:
    assert parse("runs") == ListRuns(RunFilter(), offset=0, limit=DEFAULT_LIMIT)
    assert parse("RUNS") == ListRuns()
    assert parse("  runs  ") == ListRuns()


@pytest.mark.parametrize(
    "text",
    [
        f"run {RUN_ID}",
        f"RUN {RUN_ID.upper()}",
        f"run id:{RUN_ID}",
        f"run ID:{RUN_ID}",
        f"run run:{RUN_ID}",
        f"run id: {RUN_ID}",
        f"run {{{RUN_ID}}}",
        f"run {RUN_ID.replace('-', '')}",
        f"run `{RUN_ID}`",
        f'run "{RUN_ID}"',
        f"run “{RUN_ID}”",
        f"run urn:uuid:{RUN_ID}",
    ],
)
def test_run_accepts_a_uuid_in_any_common_spelling(text: str) -> None:
    assert parse(text) == ShowRun(RUN_ID)


def test_run_without_an_id_asks_for_it() -> None:
    err = error("run")
    assert "id" in err.message
    assert err.usage == USAGE["run"]
    assert "/cde run <run-id>" in err.usage
    assert EXAMPLE_RUN in err.usage


def test_run_with_two_words_says_it_takes_one() -> None:
    err = error(f"run {RUN_ID} {RUN_ID}")
    assert "one run id" in err.message
    assert "2 words" in err.message
    assert err.usage == USAGE["run"]


@pytest.mark.parametrize("word", ["1234", "not-a-uuid", "019e16f3-bfc3-7993-bd03", "site:1001"])
def test_run_with_a_bad_id_names_the_word(word: str) -> None:
    err = error(f"run {word}")
    assert f"`{word}`" in err.message
    assert "UUID" in err.message
    assert err.usage == USAGE["run"]


@pytest.mark.parametrize(("word", "suggestion"), [("rns", "runs"), ("rum", "run"), ("hlep", "help"),
                                                  ("rnus", "runs")])
def test_unknown_command_names_the_word_and_suggests(word: str, suggestion: str) -> None:
    err = error(f"{word} site:1001")
    assert f"`{word}`" in err.message
    assert f"Did you mean `/cde {suggestion}`?" in err.message
    assert "`/cde help`" in err.message


def test_unknown_command_without_a_close_match_has_no_suggestion() -> None:
    err = error("deploy everything")
    assert "`deploy`" in err.message
    assert "Did you mean" not in err.message
    assert "`/cde help`" in err.message


def test_text_over_the_maximum_is_refused_with_its_length() -> None:
    text = "runs " + "x" * MAX_TEXT
    err = error(text)
    assert str(len(text)) in err.message
    assert str(MAX_TEXT) in err.message


def test_text_at_the_maximum_is_parsed() -> None:
    text = "runs site:1001" + " " * (MAX_TEXT - len("runs site:1001"))
    assert len(text) == MAX_TEXT
    assert runs(text).run_filter.site_id == 1001


# ---------------------------------------------------------------------------- filter keys


@pytest.mark.parametrize(
    ("word", "value", "field", "expected"),
    [
        ("id", RUN_ID, "id", RUN_ID),
        ("run", RUN_ID, "id", RUN_ID),
        ("run-id", RUN_ID, "id", RUN_ID),
        ("run_id", RUN_ID, "id", RUN_ID),
        ("site", "1001", "site_id", 1001),
        ("site-id", "1001", "site_id", 1001),
        ("site_id", "1001", "site_id", 1001),
        ("SITE", "1001", "site_id", 1001),
        ("state", "failed", "state", "failed"),
        ("status", "finished", "state", "finished"),
        ("state", "FAILED", "state", "failed"),
        ("connector", CONNECTOR_ID, "connector_id", CONNECTOR_ID),
        ("connector-id", CONNECTOR_ID.upper(), "connector_id", CONNECTOR_ID),
        ("connector_id", CONNECTOR_ID, "connector_id", CONNECTOR_ID),
        ("version", "1.0.1", "connector_version", "1.0.1"),
        ("connector-version", "2.0.0-beta.1+build_7", "connector_version", "2.0.0-beta.1+build_7"),
        ("version", "V2", "connector_version", "V2"),
        ("process", PROCESS_ID, "process_id", PROCESS_ID),
        ("process-id", PROCESS_ID, "process_id", PROCESS_ID),
        ("process_id", PROCESS_ID.replace("-", ""), "process_id", PROCESS_ID),
    ],
)
@pytest.mark.parametrize("sep", [":", "="])
def test_every_filter_key_and_alias(word: str, value: str, field: str, expected: object, sep: str) -> None:
    parsed = runs(f"runs {word}{sep}{value}")
    assert getattr(parsed.run_filter, field) == expected
    others = parsed.run_filter.model_dump(exclude_none=True)
    assert others == {field: expected}
    assert parsed.offset == 0
    assert parsed.limit == DEFAULT_LIMIT


def test_every_filter_key_is_covered_by_the_alias_table() -> None:
    # The parametrised test above names every key and alias FILTER_KEYS declares.
    declared = {word for key in FILTER_KEYS for word in (key.name, *key.aliases)}
    assert declared == {"id", "run", "run-id", "site", "site-id", "state", "status", "connector",
                        "connector-id", "version", "connector-version", "process", "process-id"}


def test_all_filters_and_paging_together() -> None:
    parsed = runs(f"runs site:1001 state:failed connector:{CONNECTOR_ID} version:1.0.1 "
                  f"process:{PROCESS_ID} id:{RUN_ID} limit:{MAX_LIMIT} from:40")
    assert parsed == ListRuns(
        RunFilter(id=RUN_ID, connector_id=CONNECTOR_ID, connector_version="1.0.1", site_id=1001,
                  state="failed", process_id=PROCESS_ID),
        offset=40, limit=MAX_LIMIT,
    )
    assert parsed.run_filter.to_params() == {
        "id": RUN_ID, "connector-id": CONNECTOR_ID, "connector-version": "1.0.1", "site-id": "1001",
        "state": "failed", "process-id": PROCESS_ID,
    }


def test_order_of_filters_does_not_matter() -> None:
    assert runs("runs state:failed site:1001 limit:5") == runs("runs limit:5 site:1001 state:failed")


# ------------------------------------------------------------------------------- states


def test_a_typo_of_a_state_suggests_the_known_state() -> None:
    err = error("runs state:faild")
    assert "`state:faild`" in err.message
    assert "did you mean `state:failed`" in err.message
    assert err.usage == USAGE["runs"]


@pytest.mark.parametrize(("typo", "known"), [("finshed", "finished"), ("FIALED", "failed"),
                                             ("finised", "finished"), ("faild", "failed")])
def test_typos_of_each_known_state(typo: str, known: str) -> None:
    err = error(f"runs status:{typo}")
    assert f"`status:{typo}`" in err.message
    assert f"`state:{known}`" in err.message


@pytest.mark.parametrize("state", ["running", "pending", "queued", "cancelled", "started", "timed_out",
                                   "killed", "finishing", "in-progress", "state2"])
def test_unknown_states_pass_through(state: str) -> None:
    assert runs(f"runs state:{state}").run_filter.state == state


@pytest.mark.parametrize("value", ["fail!", "1failed", "a.b", "x" * 40, "ünknown"])
def test_state_must_be_a_single_word(value: str) -> None:
    err = error(f"runs state:{value}")
    assert f"`state:{value}`" in err.message
    assert "`state:failed`" in err.message


# ---------------------------------------------------------------------------- value errors


@pytest.mark.parametrize(
    ("text", "word", "correct"),
    [
        ("runs id:123", "id:123", f"`id:{EXAMPLE_UUID}`"),
        ("runs run-id:abc", "run-id:abc", f"`id:{EXAMPLE_UUID}`"),
        ("runs connector:abc", "connector:abc", f"`connector:{EXAMPLE_UUID}`"),
        ("runs connector-id:019e16f3-bfa8", "connector-id:019e16f3-bfa8", f"`connector:{EXAMPLE_UUID}`"),
        ("runs process:1001", "process:1001", f"`process:{EXAMPLE_UUID}`"),
        ("runs site:abc", "site:abc", "`site:1001`"),
        ("runs site:0", "site:0", "`site:1001`"),
        ("runs site:-5", "site:-5", "`site:1001`"),
        ("runs site:1.5", "site:1.5", "`site:1001`"),
        ("runs site:1e3", "site:1e3", "`site:1001`"),
        ("runs site:١٠٠١", "site:١٠٠١", "`site:1001`"),  # Arabic-Indic digits
        ("runs site:9223372036854775808", "site:9223372036854775808", "from 1 to 9223372036854775807"),
        ("runs site:" + "9" * 900, "site:" + "9" * 50, "from 1 to 9223372036854775807"),
        ("runs site-id:x", "site-id:x", "`site:1001`"),
        ("runs version:.1", "version:.1", "`version:1.0.1`"),
        ("runs version:1/2", "version:1/2", "`version:1.0.1`"),
        ("runs version:-1", "version:-1", "`version:1.0.1`"),
        ("runs version:" + "1" * 65, "version:" + "1" * 50, "`version:1.0.1`"),
        ("runs limit:0", "limit:0", "`limit:10`"),
        (f"runs limit:{MAX_LIMIT + 1}", f"limit:{MAX_LIMIT + 1}", "`limit:10`"),
        ("runs limit:abc", "limit:abc", "`limit:10`"),
        ("runs limit:-5", "limit:-5", "`limit:10`"),
        ("runs limit:99999999999", "limit:99999999999", "`limit:10`"),
        ("runs from:-1", "from:-1", "`from:"),
        ("runs from:1.5", "from:1.5", "`from:"),
        ("runs from:ten", "from:ten", "`from:"),
        (f"runs from:{MAX_OFFSET + 1}", f"from:{MAX_OFFSET + 1}", str(MAX_OFFSET)),
    ],
)
def test_a_bad_value_names_the_word_and_shows_the_correct_form(text: str, word: str, correct: str) -> None:
    err = error(text)
    assert f"`{word}" in err.message
    assert correct in err.message
    assert err.usage == USAGE["runs"]
    assert_balanced_code_spans(err.message)


def test_limit_bounds_are_named_in_the_error() -> None:
    err = error("runs limit:0")
    assert f"from 1 to {MAX_LIMIT}" in err.message


@pytest.mark.parametrize("limit", [1, 2, DEFAULT_LIMIT, MAX_LIMIT])
def test_limit_within_bounds(limit: int) -> None:
    assert runs(f"runs limit:{limit}").limit == limit


@pytest.mark.parametrize("offset", [0, 1, 10, MAX_OFFSET])
def test_from_within_bounds(offset: int) -> None:
    assert runs(f"runs from:{offset}").offset == offset


def test_leading_zeros_are_just_numbers() -> None:
    parsed = runs("runs limit:05 from:007 site:01001")
    assert (parsed.limit, parsed.offset, parsed.run_filter.site_id) == (5, 7, 1001)


# ------------------------------------------------------------------------ shape errors


@pytest.mark.parametrize("word", ["failed", "site1001", "1001", "--site"])
def test_a_word_without_a_key_is_not_a_filter(word: str) -> None:
    err = error(f"runs {word}")
    assert f"`{word}` is not a filter" in err.message
    assert "`key:value`" in err.message
    assert "`site:1001`" in err.message
    assert err.usage == USAGE["runs"]


def test_a_bare_uuid_after_runs_points_to_the_run_command() -> None:
    err = error(f"runs {RUN_ID.upper()}")
    assert f"`/cde run {RUN_ID}`" in err.message
    assert f"`id:{RUN_ID}`" in err.message


@pytest.mark.parametrize("text", ["runs site:", "runs site: ", "runs state=", "runs site:``"])
def test_a_key_without_a_value(text: str) -> None:
    err = error(text)
    assert "no value" in err.message
    assert re.search(r"`(site|state)[:=]`", err.message), err.message


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [("stat", "state"), ("sit", "site"), ("limt", "limit"), ("form", "from"), ("conector", "connector"),
     ("verison", "version"), ("proces", "process")],
)
def test_an_unknown_key_is_named_with_a_suggestion_and_the_list(key: str, suggestion: str) -> None:
    err = error(f"runs {key}:1")
    assert f"`{key}` is not a filter" in err.message
    assert f"Did you mean `{suggestion}`?" in err.message
    for name in ("id", "site", "state", "connector", "version", "process", "limit", "from"):
        assert f"`{name}`" in err.message
    assert err.usage == USAGE["runs"]


def test_an_unknown_key_far_from_any_other_has_no_suggestion() -> None:
    err = error("runs colour:blue")
    assert "`colour` is not a filter" in err.message
    assert "Did you mean" not in err.message


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("runs site:1 site:2", "site"),
        ("runs site:1 site-id:1", "site"),
        ("runs state:failed status:finished", "state"),
        (f"runs id:{RUN_ID} run:{RUN_ID}", "id"),
        (f"runs connector:{CONNECTOR_ID} connector_id:{CONNECTOR_ID}", "connector"),
        ("runs version:1 connector-version:2", "version"),
        (f"runs process:{PROCESS_ID} process-id:{PROCESS_ID}", "process"),
        ("runs limit:5 limit:6", "limit"),
        ("runs from:1 from:2", "from"),
    ],
)
def test_a_duplicate_key_is_named(text: str, canonical: str) -> None:
    err = error(text)
    assert f"`{canonical}` is given twice" in err.message
    assert err.usage == USAGE["runs"]


# --------------------------------------------------------------- how people really type it


@pytest.mark.parametrize(
    "text",
    [
        "runs site: 1001 state: failed",
        "runs site= 1001 state=failed",
        "runs site:   1001   state:failed",
        'runs "site:1001" "state:failed"',
        "runs `site:1001` `state:failed`",
        "runs site:'1001' state:\"failed\"",
        "runs site:“1001” state:‘failed’",
        "runs “site:1001 state:failed”",
        "`runs site:1001 state:failed`",
        "runs\tsite:1001\nstate:failed",
        "runs site: `1001` state: “failed”",
    ],
)
def test_spaces_after_the_colon_and_pasted_quotes(text: str) -> None:
    assert parse(text) == ListRuns(RunFilter(site_id=1001, state="failed"))


def test_slack_escaping_of_the_command_text_is_undone() -> None:
    # Slack sends `<`, `>` and `&` in command text as &lt; &gt; &amp;.
    err = error("runs state:&lt;script&gt;")
    assert "`state:<script>`" in err.message
    assert "&lt;" not in err.message
    err = error("runs version:1&amp;2")
    assert "`version:1&2`" in err.message
    assert "&amp;" not in err.message


def test_a_literal_entity_typed_by_the_user_is_unescaped_only_once() -> None:
    # The user typed "&lt;" literally; Slack sends "&amp;lt;".
    err = error("runs version:&amp;lt;")
    assert "`version:&lt;`" in err.message


def test_slack_escaped_angle_brackets_around_a_run_id() -> None:
    # Copying the usage text `/cde run <run-id>` with the id inside the brackets.
    err = error(f"run &lt;{RUN_ID}&gt;")
    assert f"`<{RUN_ID}>`" in err.message


def test_backticks_in_an_echoed_word_do_not_break_the_code_span() -> None:
    err = error("runs a`b`c")
    assert "`a'b'c`" in err.message
    assert_balanced_code_spans(err.message)
    err = error("dep`loy")
    assert_balanced_code_spans(err.message)


def test_a_very_long_word_is_echoed_shortened() -> None:
    word = "x" * 200
    err = error(f"runs {word}")
    assert word not in err.message
    assert "x" * 59 + "…" in err.message


# ------------------------------------------------------------------------- canonical text


@pytest.mark.parametrize(
    ("command", "text"),
    [
        (ListRuns(), "runs"),
        (ListRuns(RunFilter(site_id=1001, state="failed")), "runs site:1001 state:failed"),
        (ListRuns(RunFilter(state="failed"), offset=20, limit=5), "runs state:failed from:20 limit:5"),
        (ListRuns(RunFilter(id=RUN_ID, connector_id=CONNECTOR_ID, connector_version="1.0.1",
                            process_id=PROCESS_ID)),
         f"runs id:{RUN_ID} connector:{CONNECTOR_ID} version:1.0.1 process:{PROCESS_ID}"),
    ],
)
def test_to_text(command: ListRuns, text: str) -> None:
    assert command.to_text() == text
    assert parse(text) == command


def test_describe_filter_follows_the_key_order() -> None:
    run_filter = RunFilter(process_id=PROCESS_ID, state="failed", site_id=7)
    assert describe_filter(run_filter) == ["site:7", "state:failed", f"process:{PROCESS_ID}"]
    assert describe_filter(RunFilter()) == []


def test_page_keeps_the_query_and_never_goes_below_zero() -> None:
    query = ListRuns(RunFilter(site_id=1), offset=5, limit=10)
    assert query.page(15) == ListRuns(RunFilter(site_id=1), offset=15, limit=10)
    assert query.page(-5) == ListRuns(RunFilter(site_id=1), offset=0, limit=10)


# ------------------------------------------------------------------------------ properties


def assert_valid(parsed: object) -> None:
    """Whatever parse returns is a command or an error, and nothing invalid gets through."""
    assert isinstance(parsed, Help | ListRuns | ShowRun | Subscribe | ListSubscriptions | Unsubscribe
                      | Audit | QueryError), parsed
    if isinstance(parsed, Audit):
        assert 1 <= parsed.limit <= 100
    if isinstance(parsed, Subscribe) and parsed.notice_filter.is_empty:
        assert parsed.everything or not parsed.notice_filter.as_dict()
    if isinstance(parsed, Unsubscribe) and parsed.subscription_id is not None:
        assert parsed.subscription_id >= 0
    if isinstance(parsed, QueryError):
        assert parsed.message.strip()
        assert_balanced_code_spans(parsed.message)
    elif isinstance(parsed, ShowRun):
        assert str(uuid.UUID(parsed.run_id)) == parsed.run_id
    elif isinstance(parsed, ListRuns):
        assert 1 <= parsed.limit <= MAX_LIMIT
        assert 0 <= parsed.offset <= MAX_OFFSET
        f = parsed.run_filter
        for value in (f.id, f.connector_id, f.process_id):
            assert value is None or str(uuid.UUID(value)) == value
        assert f.site_id is None or (isinstance(f.site_id, int) and f.site_id > 0)
        assert f.state is None or f.state in KNOWN_STATES or STATE_RE.match(f.state)
        assert f.connector_version is None or VERSION_RE.match(f.connector_version)
        # The canonical text of any parsed query gives the same query back.
        assert parse(parsed.to_text()) == parsed


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=MAX_TEXT + 20))
def test_parse_never_raises_on_arbitrary_text(text: str) -> None:
    assert_valid(parse(text))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200).map(lambda t: "runs " + t))
def test_parse_never_raises_on_arbitrary_runs_arguments(text: str) -> None:
    assert_valid(parse(text))


KEY_WORDS = [*(w for k in FILTER_KEYS for w in (k.name, *k.aliases)), "from", "limit", "site_id",
             "STATE", "stat", "limt", "form", "colour", "", "`site", "“state"]
VALUES = [RUN_ID, RUN_ID.upper(), RUN_ID.replace("-", ""), "1001", "0", "-1", "1.5", "20", "21",
          str(MAX_OFFSET), str(MAX_OFFSET + 1), "failed", "faild", "FINISHED", "running", "1.0.1",
          "v2+b~1", "&lt;!channel&gt;", "a&amp;b", "`x`", "“1001”", "", "٣", "99999999999999999999"]
SEPARATORS = [":", "=", ": ", "= ", " : ", " "]
VERBS = ["runs", "run", "help", "RUNS", "rns", "?", "`runs`"]


@st.composite
def plausible_commands(draw: st.DrawFn) -> str:
    verb = draw(st.sampled_from(VERBS))
    words = [verb]
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        key = draw(st.sampled_from(KEY_WORDS) | st.text(max_size=8))
        sep = draw(st.sampled_from(SEPARATORS))
        value = draw(st.sampled_from(VALUES) | st.text(max_size=12))
        words.append(f"{key}{sep}{value}")
    spacing = draw(st.sampled_from([" ", "  ", "\t", "\n", " \u00a0"]))
    return spacing.join(words)


@settings(max_examples=300, deadline=None)
@given(plausible_commands())
def test_parse_never_raises_on_plausible_commands(text: str) -> None:
    assert_valid(parse(text))


uuids = st.uuids().map(str)
filters = st.builds(
    RunFilter,
    id=st.none() | uuids,
    connector_id=st.none() | uuids,
    process_id=st.none() | uuids,
    site_id=st.none() | st.integers(min_value=1, max_value=10**18 - 1),
    state=st.none() | st.sampled_from(KNOWN_STATES) | st.from_regex(STATE_RE, fullmatch=True).filter(
        lambda s: isinstance(parse(f"runs state:{s}"), ListRuns)),
    connector_version=st.none() | st.from_regex(r"[0-9A-Za-z][0-9A-Za-z.+_~-]{0,20}", fullmatch=True),
)
list_runs = st.builds(ListRuns, run_filter=filters, offset=st.integers(min_value=0, max_value=MAX_OFFSET),
                      limit=st.integers(min_value=1, max_value=MAX_LIMIT))


@settings(max_examples=300, deadline=None)
@given(list_runs)
def test_to_text_round_trips_through_parse(command: ListRuns) -> None:
    text = command.to_text()
    assert len(text) <= MAX_TEXT
    assert parse(text) == command


@settings(max_examples=100, deadline=None)
@given(list_runs)
def test_to_text_round_trips_after_slack_escaping(command: ListRuns) -> None:
    escaped = command.to_text().replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert parse(escaped) == command


# ------------------------------------------------------------------ range errors, anchors


@pytest.mark.parametrize(("text", "says"), [
    ("runs from:-1", "from must be 0 or more"),
    ("runs from:-100", "from must be 0 or more"),
    ("runs from:ten", "0 or more"),
    ("runs limit:0", f"limit must be from 1 to {MAX_LIMIT}"),
    ("runs limit:500", f"limit must be from 1 to {MAX_LIMIT}"),
    ("runs limit:-5", f"limit must be from 1 to {MAX_LIMIT}"),
    ("runs limit:abc", f"from 1 to {MAX_LIMIT}"),
])
def test_range_errors_name_the_allowed_range(text: str, says: str) -> None:
    err = error(text)
    assert says in err.message
    assert "must be a whole number," not in err.message


@pytest.mark.parametrize(("word", "name", "subscribe"), [
    ("project:650", "project", "project:650"), ("project-id:12", "project", "project:12"),
    ("account:748", "account", "account:748"), ("account_id:x", "account", "account:748"),
])
def test_runs_by_project_or_account_points_to_subscribe(word: str, name: str, subscribe: str) -> None:
    err = error(f"runs {word}")
    assert f"`/cde runs` cannot filter by {name}: the CDE API does not list runs by {name}" in err.message
    assert f"`/cde subscribe {subscribe}`" in err.message
    assert_balanced_code_spans(err.message)


def test_an_anchor_round_trips_but_is_never_advertised() -> None:
    query = ListRuns(RunFilter(site_id=1001), offset=10, anchor=Anchor(RUN_ID, 37))
    assert query.to_text() == f"runs site:1001 from:10 as-of:{RUN_ID}/37"
    assert parse(query.to_text()) == query
    assert query.page(20).anchor == query.anchor
    assert query.fresh() == ListRuns(RunFilter(site_id=1001))
    assert "as-of" not in USAGE["runs"]
    assert "as-of" not in error("runs colour:blue").message
    assert "as-of" not in error("runs as:1").message


@pytest.mark.parametrize("value", ["xx", RUN_ID, f"{RUN_ID}/", f"{RUN_ID}/-1", "nope/3", f"{RUN_ID}/1e3"])
def test_a_damaged_anchor_is_refused_like_any_value(value: str) -> None:
    err = error(f"runs as-of:{value}")
    assert "page marker is damaged" in err.message


# -- /cde audit [N] ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "limit"), [("audit", 20), ("AUDIT 5", 5), ("audit 100", 100),
                                             ("audit 007", 7)])
def test_audit_takes_an_optional_count(text: str, limit: int) -> None:
    assert parse(text) == Audit(limit)


@pytest.mark.parametrize(("text", "says"), [
    ("audit 0", "out of range"), ("audit 101", "out of range"), ("audit 99999999999999", "out of range"),
    ("audit -3", "not a number"), ("audit ５", "not a number"), ("audit 1 2", "takes one number"),
])
def test_a_bad_audit_count_names_the_range(text: str, says: str) -> None:
    parsed = parse(text)
    assert isinstance(parsed, QueryError) and says in parsed.message
    assert parsed.usage is not None and "1 to 100" in parsed.usage
