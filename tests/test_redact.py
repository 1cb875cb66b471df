"""bot/redact.py: each configured secret is redacted in every form it takes on its way out,
short values never blank ordinary words, and Slack's response_url is masked in the log."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import load_settings
from bot.redact import MIN_ANYWHERE, REDACTED, Redactor, for_settings, mask_hooks
from bot.slack.mrkdwn import clip, escape

TOKEN = "cde-t0ken/with+odd&chars<\"'>-0123"
PLAIN = "xoxb-1111-2222-abcdefABCDEF"


@pytest.mark.parametrize("shown", [
    TOKEN,
    f"Authorization: Bearer {TOKEN}",
    quote(TOKEN, safe=""),
    quote(TOKEN, safe="").lower(),
    quote(TOKEN),
    quote_plus(TOKEN),
    json.dumps(TOKEN),
    json.dumps(TOKEN).replace("/", "\\/"),
    json.dumps(TOKEN).replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"),
    repr(TOKEN),
    escape(TOKEN),
    "&lt;" + TOKEN.replace("&", "&amp;") + "&gt;",
])
def test_a_secret_is_redacted_in_every_escaped_form(shown: str) -> None:
    redacted = Redactor([TOKEN]).text(f"the API said: {shown}.")
    assert REDACTED in redacted
    # Nothing long of the secret is left: no run of 6 of its characters.
    for start in range(len(TOKEN) - 6):
        assert TOKEN[start:start + 6] not in redacted, redacted


@pytest.mark.parametrize("offset", ["", "u", "us", "user:"])
@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_a_secret_is_redacted_inside_base64_at_any_offset(offset: str, encode: object) -> None:
    assert callable(encode)
    encoded = encode(f"{offset}{PLAIN}:tail".encode()).decode()
    redacted = Redactor([PLAIN]).text(f"Basic {encoded}")
    assert REDACTED in redacted
    # What is left carries the neighbours and at most two bytes of the secret at each edge.
    core = len(encoded) - 4 * ((len(PLAIN) - 4) // 3)
    assert len(redacted.replace(REDACTED, "")) <= len("Basic ") + core


def test_a_whole_string_is_redacted_through_json_like_values() -> None:
    value = {"text": f"t {PLAIN}", "blocks": [{"text": {"text": PLAIN}}], "n": 3,
             "metadata": {"event_payload": {PLAIN: (PLAIN, None)}}, "token": PLAIN}
    clean = Redactor([PLAIN]).value(value, keep=frozenset({"token"}))
    assert clean["token"] == PLAIN  # the credential the call is made with stays
    del clean["token"]
    assert PLAIN not in json.dumps(clean)
    assert clean["blocks"][0]["text"]["text"] == REDACTED and clean["n"] == 3
    assert clean["metadata"]["event_payload"] == {REDACTED: (REDACTED, None)}


def test_short_secrets_are_redacted_as_whole_words_only() -> None:
    redactor = Redactor(["failed", "abc", "p4ss-w0rd"])
    assert redactor.text("the state is failed") == f"the state is {REDACTED}"
    assert redactor.text("unfailed failedly abc") == "unfailed failedly abc"  # too short or inside a word
    assert redactor.text("password=p4ss-w0rd;") == f"password={REDACTED};"
    assert redactor.text("xp4ss-w0rdx") == "xp4ss-w0rdx"
    assert Redactor(["", "x"]).text("x marks the spot") == "x marks the spot"
    assert not Redactor(["abcde"])


def test_longer_secrets_win_over_their_prefixes() -> None:
    redactor = Redactor([PLAIN[:14], PLAIN])
    assert redactor.text(f"{PLAIN} and {PLAIN[:14]}") == f"{REDACTED} and {REDACTED}"


def test_the_secrets_come_from_every_secret_setting_and_url_password() -> None:
    settings = load_settings(
        environment=False, slack_bot_token=PLAIN, slack_signing_secret="signing-secret-0123",
        slack_app_token="xapp-1-app-token-0123", cde_api_token=TOKEN,
        cde_api_url="https://cde-user:api%2Fpassword-9@cde.example.com",
        database_url="postgresql+asyncpg://bot:db%40password-1@db/cde",
    )
    secrets = set(settings.secrets())
    assert {PLAIN, "signing-secret-0123", "xapp-1-app-token-0123", TOKEN, "db%40password-1",
            "db@password-1", "api%2Fpassword-9", "api/password-9"} <= secrets
    text = for_settings(settings).text(" ".join(sorted(secrets)))
    assert set(text.split()) == {REDACTED}


def test_response_urls_are_masked() -> None:
    hooks = "https://hooks.slack.com/commands/T0001/1234/abcdEFGH"
    gov = "https://hooks.slack-gov.com/actions/T0001/1234/abcdEFGH"
    text = (f"Sending a request - url: {hooks}, body: {{'response_url': 'http://127.0.0.1:1/r/x'}} "
            f"{gov} response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1 {json.dumps(hooks)}")
    masked = mask_hooks(text)
    assert "abcdEFGH" not in masked and "127.0.0.1" not in masked and "%2FT1" not in masked
    assert "https://hooks.slack.com/[redacted]," in masked
    assert "'response_url': '[redacted]'" in masked
    assert mask_hooks("nothing to hide here") == "nothing to hide here"


@pytest.mark.parametrize("kept", range(len(TOKEN) + 1))
@pytest.mark.parametrize("shown", [TOKEN, escape(TOKEN), json.dumps(TOKEN)[1:-1], quote(TOKEN, safe="")])
def test_a_clip_leaves_no_part_of_a_secret_of_twelve_characters_or_more(kept: int, shown: str) -> None:
    # `kept` characters of `shown` are left before the clip's ellipsis.
    text = clip("x" * 40 + shown + " and more", 40 + kept + 1)
    redacted = Redactor([TOKEN]).text(text)
    for start in range(len(TOKEN) - MIN_ANYWHERE + 1):
        piece = TOKEN[start:start + MIN_ANYWHERE]
        assert piece not in redacted and escape(piece) not in redacted, redacted
        assert json.dumps(piece)[1:-1] not in redacted and quote(piece, safe="") not in redacted, redacted


def test_a_secret_split_in_two_is_redacted_on_both_sides() -> None:
    redactor = Redactor([TOKEN])
    half = len(TOKEN) // 2
    assert redactor.value([f"said: {TOKEN[:half]}", f"{TOKEN[half:]} may not"]) == [
        f"said: {REDACTED}", f"{REDACTED} may not"]
    # What is left of it under MIN_ANYWHERE characters is not recognisable, and stays.
    assert redactor.text(f"a {TOKEN[:MIN_ANYWHERE - 1]}…") == f"a {TOKEN[:MIN_ANYWHERE - 1]}…"
    assert redactor.text(f"{TOKEN[-MIN_ANYWHERE + 1:]} b") == f"{TOKEN[-MIN_ANYWHERE + 1:]} b"


def test_a_secret_escaped_twice_is_redacted() -> None:
    # A JSON body in a repr(): what a library's DEBUG log of a request shows.
    body = repr(json.dumps({"text": f"state:{TOKEN}"}))
    assert Redactor([TOKEN]).text(body) == repr(json.dumps({"text": f"state:{REDACTED}"}))


def test_ordinary_text_is_left_as_it_is() -> None:
    text = "cde-bot answered: no failed runs at site 1001 since 2025-10-28 (token accepted)."
    assert Redactor([TOKEN, PLAIN, "signing-secret-0123"]).text(text) == text


def test_slacks_verification_token_is_masked() -> None:
    # As Bolt logs a Socket Mode envelope at DEBUG, and as a form body or a keyword shows it.
    envelope = repr(json.dumps({"payload": {"token": "vt-0123", "team_id": "T0001"}}))
    masked = mask_hooks(f"Received message: {envelope} body: token=vt-0123&team_id=T1 token: vt-0123")
    assert "vt-0123" not in masked and '"token": "[redacted]"' in masked and "T0001" in masked
    assert mask_hooks("the token was rejected; next_token=abc") == "the token was rejected; next_token=abc"


SECRETS = ("xoxb-1111-2222-abcdefabcdef", "s3cr3t-Signing-Key-0001", "short1")
_pieces = st.sampled_from([*SECRETS, "xoxb-1111-2222-", "abcdef", "s3cr3t", " ", "ok", "%", "\n", "é"])
_texts = st.lists(_pieces, max_size=6).map("".join)
_values = st.recursive(
    _texts | st.integers() | st.none(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_texts, inner, max_size=4),
    max_leaves=12,
)


def _each_alone(redactor: Redactor, value: object) -> object:
    """What redacting every string on its own gives."""
    if isinstance(value, str):
        return redactor.text(value)
    if isinstance(value, dict):
        return {redactor.text(k): _each_alone(redactor, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_each_alone(redactor, item) for item in value]
    return value


@given(_values)
def test_a_value_is_redacted_as_each_of_its_strings_alone(value: object) -> None:
    """`value()` looks for secrets in all strings at once; no match may span two of them,
    and none may be missed."""
    redactor = Redactor(SECRETS)
    assert redactor.value(value) == _each_alone(redactor, value)
