"""bot/query.py: `/cde subscribe`, `/cde subscriptions` and `/cde unsubscribe`."""

from __future__ import annotations

from typing import Any

import pytest

from bot.notices.models import NoticeFilter
from bot.query import (
    SUBSCRIPTION_KEYS,
    USAGE,
    ListSubscriptions,
    QueryError,
    Subscribe,
    Unsubscribe,
    parse,
    subscription_words,
)

CONNECTOR = "019e16f3-bfa8-7390-9e63-3354f9aa2939"
PROCESS = "019e16f3-bfc3-79c7-bd03-ad208a64bf34"


def subscribe(text: str) -> Subscribe:
    parsed = parse(text)
    assert isinstance(parsed, Subscribe), parsed
    return parsed


def error(text: str) -> QueryError:
    parsed = parse(text)
    assert isinstance(parsed, QueryError), parsed
    return parsed


# --------------------------------------------------------------------------- subscribe

KEY_CASES = [
    # (words, NoticeFilter field, parsed value)
    (("site", "site-id", "site_id", "SITE", "Site-Id"), "site_id", ("1001", 1001)),
    (("connector", "connector-id", "connector_id"), "connector_id", (CONNECTOR.upper(), CONNECTOR)),
    (("version", "connector-version", "connector_version"), "connector_version", ("2.0.0", "2.0.0")),
    (("process", "process-id", "process_id"), "process_id", (PROCESS, PROCESS)),
    (("project", "project-id", "project_id"), "project_id", ("650", 650)),
    (("account", "account-id", "account_id"), "account_id", ("748", 748)),
]
WORD_CASES = [(word, field, typed, value) for words, field, (typed, value) in KEY_CASES for word in words]


@pytest.mark.parametrize(("word", "field", "typed", "value"), WORD_CASES,
                         ids=[c[0] for c in WORD_CASES])
def test_every_key_and_alias(word: str, field: str, typed: str, value: Any) -> None:
    parsed = subscribe(f"subscribe {word}:{typed}")
    assert parsed == Subscribe(NoticeFilter(**{field: value}), everything=False)


def test_every_key_at_once() -> None:
    parsed = subscribe(f"subscribe site:1001 connector:{CONNECTOR} version:1.0.1 process:{PROCESS} "
                       "project:650 account:748")
    assert parsed == Subscribe(NoticeFilter(
        site_id=1001, connector_id=CONNECTOR, connector_version="1.0.1", process_id=PROCESS,
        project_id=650, account_id=748))
    assert not parsed.everything


def test_subscription_keys_are_the_documented_ones() -> None:
    assert [key.name for key in SUBSCRIPTION_KEYS] == [
        "site", "connector", "version", "process", "project", "account"]


@pytest.mark.parametrize("text", [
    "subscribe site=1001", "subscribe site: 1001", 'subscribe "site:1001"', "subscribe site:`1001`",
    "Subscribe SITE:1001", "  subscribe   site:1001  ",
])
def test_forms_people_type(text: str) -> None:
    assert subscribe(text) == Subscribe(NoticeFilter(site_id=1001))


@pytest.mark.parametrize("text", ["subscribe all", "subscribe ALL", "Subscribe All"])
def test_subscribe_all_still_asks_for_confirmation(text: str) -> None:
    # Following everything is always confirmed with a click, `all` typed or not.
    parsed = subscribe(text)
    assert parsed == Subscribe(NoticeFilter(), everything=False)
    assert parsed.notice_filter.is_empty
    assert parsed == subscribe("subscribe")


def test_empty_subscribe_asks_for_confirmation() -> None:
    parsed = subscribe("subscribe")
    assert parsed == Subscribe(NoticeFilter(), everything=False)
    assert parsed.notice_filter.is_empty


def test_filters_never_set_everything() -> None:
    assert subscribe("subscribe site:1001").everything is False


@pytest.mark.parametrize("word", ["state:failed", "status:failed", "STATE:finished", "state:killed"])
def test_state_is_refused_with_a_reason(word: str) -> None:
    err = error(f"subscribe site:1001 {word}")
    assert err.message == f"Subscriptions always follow failed runs; leave out `{word}`."
    assert err.usage == USAGE["subscribe"]


@pytest.mark.parametrize(("word", "suggestion"), [
    ("sit", "site"), ("sites", "site"), ("projct", "project"), ("acount", "account"),
    ("conector", "connector"), ("verison", "version"), ("proces", "process"),
])
def test_unknown_key_suggests_the_closest(word: str, suggestion: str) -> None:
    err = error(f"subscribe {word}:1")
    assert err.message.startswith(f"`{word}` is not a subscription filter. Did you mean `{suggestion}`?")
    assert "Filters: `site`, `connector`, `version`, `process`, `project`, `account`." in err.message
    assert err.usage == USAGE["subscribe"]


@pytest.mark.parametrize("word", ["id", "limit", "from", "zzzz"])
def test_keys_of_runs_only_or_nonsense_are_refused(word: str) -> None:
    err = error(f"subscribe {word}:1")
    assert err.message.startswith(f"`{word}` is not a subscription filter.")
    assert "Filters:" in err.message


@pytest.mark.parametrize(("text", "key"), [
    ("subscribe site:1001 site:1002", "site"),
    ("subscribe site:1001 site-id:1001", "site"),
    (f"subscribe connector:{CONNECTOR} connector_id:{CONNECTOR}", "connector"),
    ("subscribe version:1.0.1 connector-version:2.0.0", "version"),
    ("subscribe project:1 project-id:2", "project"),
    ("subscribe account:1 account:1", "account"),
])
def test_duplicate_key_is_refused(text: str, key: str) -> None:
    assert error(text).message == f"`{key}` is given twice; give each filter once."


@pytest.mark.parametrize(("word", "says"), [
    ("site:abc", "site must be a site id, a positive whole number"),
    ("site:0", "site must be a site id"),
    ("site:-5", "site must be a site id"),
    ("site:1.5", "site must be a site id"),
    ("project:x", "project must be a project id"),
    ("account:12a", "account must be a account id"),
    ("connector:not-a-uuid", "connector must be a UUID"),
    ("process:123", "process must be a UUID"),
    ("version:!!", "version must be a connector version"),
    ("version:-1", "version must be a connector version"),
])
def test_bad_values_name_the_word(word: str, says: str) -> None:
    err = error(f"subscribe {word}")
    assert err.message.startswith(f"`{word}`: {says}")
    assert err.usage == USAGE["subscribe"]


def test_key_without_value() -> None:
    assert error("subscribe site:").message == "`site:` has no value after the `:`."


@pytest.mark.parametrize("text", ["subscribe foo", "subscribe all site:1001", "subscribe all all"])
def test_word_that_is_not_a_filter(text: str) -> None:
    err = error(text)
    word = text.split()[1]
    assert err.message == (f"`{word}` is not a filter: filters look like `key:value`, "
                           "e.g. `site:1001` or `project:650`.")


def test_bare_uuid_in_subscribe_points_to_a_subscription_filter() -> None:
    err = error(f"subscribe {CONNECTOR}")
    assert "/cde run " not in err.message
    assert f"connector:{CONNECTOR}" in err.message
    assert err.message == (f"`{CONNECTOR}` needs a key: to follow a connector, use "
                           f"`connector:{CONNECTOR}` (or `process:{CONNECTOR}` for a process).")


def test_long_value_is_shortened_in_the_error() -> None:
    err = error("subscribe site:" + "9" * 100)
    assert "…" in err.message
    assert len(err.message) < 200


def test_backticks_in_the_word_cannot_break_the_code_span() -> None:
    err = error("subscribe si`te:1")
    assert err.message.count("`") % 2 == 0


@pytest.mark.parametrize("notice_filter", [
    NoticeFilter(site_id=1001),
    NoticeFilter(connector_id=CONNECTOR, connector_version="1.0.1"),
    NoticeFilter(site_id=1, connector_id=CONNECTOR, connector_version="2.0.0-rc.1", process_id=PROCESS,
                 project_id=650, account_id=748),
])
def test_subscription_words_parse_back(notice_filter: NoticeFilter) -> None:
    words = subscription_words(notice_filter)
    assert subscribe("subscribe " + " ".join(words)) == Subscribe(notice_filter)


def test_subscription_words_in_key_order() -> None:
    notice_filter = NoticeFilter(account_id=748, site_id=1001, process_id=PROCESS)
    assert subscription_words(notice_filter) == ["site:1001", f"process:{PROCESS}", "account:748"]
    assert subscription_words(NoticeFilter()) == []


# ----------------------------------------------------------------------- subscriptions


@pytest.mark.parametrize("text", ["subscriptions", "SUBSCRIPTIONS", "subs", "  subscriptions "])
def test_list_subscriptions(text: str) -> None:
    assert parse(text) == ListSubscriptions()


@pytest.mark.parametrize("text", ["subscriptions all", "subscriptions site:1001", "subs 3"])
def test_list_subscriptions_takes_no_words(text: str) -> None:
    err = error(text)
    assert err.message == "`/cde subscriptions` takes no arguments."
    assert err.usage == USAGE["subscriptions"]


# ------------------------------------------------------------------------- unsubscribe


@pytest.mark.parametrize(("text", "sub_id"), [
    ("unsubscribe 3", 3), ("unsubscribe #3", 3), ("unsubscribe 042", 42), ("UNSUBSCRIBE 17", 17),
    ("unsubscribe all", None), ("unsubscribe ALL", None), ("unsubscribe #all", None),
    ("unsubscribe 1234567890123", 1234567890123),
    ("unsubscribe 9223372036854775807", 9223372036854775807),  # the largest id the store keeps
])
def test_unsubscribe(text: str, sub_id: int | None) -> None:
    assert parse(text) == Unsubscribe(sub_id)


@pytest.mark.parametrize("word", ["abc", "-1", "3.5", "#x", "٣", "site:1001"])
def test_unsubscribe_bad_id(word: str) -> None:
    err = error(f"unsubscribe {word}")
    assert err.message == (f"`{word}` is not a subscription id; ids are numbers shown by "
                           "`/cde subscriptions`.")
    assert err.usage == USAGE["unsubscribe"]


@pytest.mark.parametrize("word", ["9223372036854775808", "99999999999999999999", "9" * 900])
def test_unsubscribe_beyond_the_stores_ids_names_the_range(word: str) -> None:
    err = error(f"unsubscribe {word}")
    assert err.message.startswith(f"`{word[:20]}")
    assert "ids go from 1 to 9223372036854775807" in err.message
    assert err.usage == USAGE["unsubscribe"]


@pytest.mark.parametrize("text", ["unsubscribe", "unsubscribe 1 2", "unsubscribe all 3"])
def test_unsubscribe_needs_exactly_one_word(text: str) -> None:
    err = error(text)
    assert err.message == "Which subscription? Give its id (see `/cde subscriptions`) or `all`."
    assert err.usage == USAGE["unsubscribe"]


def test_misspelt_subscription_commands_are_suggested() -> None:
    assert "Did you mean `/cde subscribe`?" in error("subscibe site:1").message
    assert "Did you mean `/cde unsubscribe`?" in error("unsubscrbe 3").message


@pytest.mark.parametrize("word", ["id", "run", "run-id"])
def test_subscribing_to_one_run_points_to_the_run_command(word: str) -> None:
    err = error(f"subscribe {word}:019e16f3-bfb8-7ed8-8d26-b7d40818d146")
    assert "not one run" in err.message and "`/cde run <run-id>`" in err.message
