"""The Block Kit builders give the dicts slack_sdk's models give, and keep Slack's limits."""

from __future__ import annotations

import pytest
from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    Option,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)

from bot.slack import blocks as kit


def test_the_same_dicts_as_slack_sdks_models() -> None:
    pairs = [
        (kit.section("*hi* there", block_id="b1"),
         SectionBlock(text=MarkdownTextObject(text="*hi* there"), block_id="b1")),
        (kit.field_section([kit.mrkdwn("a"), kit.mrkdwn("b")]),
         SectionBlock(fields=[MarkdownTextObject(text="a"), MarkdownTextObject(text="b")])),
        (kit.header("A title"), HeaderBlock(text=PlainTextObject(text="A title"))),
        (kit.context("one", "two"),
         ContextBlock(elements=[MarkdownTextObject(text="one"), MarkdownTextObject(text="two")])),
        (kit.actions([kit.button("Go", "go_1", value="run x", style="primary"),
                      kit.button("Open", "open", url="https://cde.example/run/1"),
                      kit.static_select("Mute…", "mute", [kit.option("1 hour", "1")])],
                     block_id="acts"),
         ActionsBlock(block_id="acts", elements=[
             ButtonElement(text="Go", action_id="go_1", value="run x", style="primary"),
             ButtonElement(text="Open", action_id="open", url="https://cde.example/run/1"),
             StaticSelectElement(placeholder="Mute…", action_id="mute",
                                 options=[Option(text="1 hour", value="1")])])),
    ]
    for built, model in pairs:
        assert built == model.to_dict()


def test_texts_are_clipped_to_slacks_limits() -> None:
    button = kit.button("x" * 100, "a")
    assert len(button["text"]["text"]) == kit.MAX_BUTTON_TEXT
    assert len(kit.header("h" * 200)["text"]["text"]) == kit.MAX_HEADER
    assert len(kit.section("s" * 4000)["text"]["text"]) == kit.MAX_SECTION_TEXT
    assert len(kit.option("o" * 80, "1")["text"]["text"]) == kit.MAX_OPTION_TEXT


@pytest.mark.parametrize("build", [
    lambda: kit.button("b", "a", value="v" * 2001),
    lambda: kit.button("b", "a", url="https://x/" + "u" * 3000),
    lambda: kit.button("b", "a" * 256),
    lambda: kit.button("b", "a", style="green"),
    lambda: kit.option("o", "v" * 151),
    lambda: kit.static_select("p", "a", []),
    lambda: kit.static_select("p", "a", [kit.option("o", str(i)) for i in range(101)]),
    lambda: kit.field_section([kit.mrkdwn("f")] * 11),
    lambda: kit.actions([kit.button("b", f"a{i}") for i in range(26)]),
    lambda: kit.actions([kit.button("b", "a")], block_id="x" * 256),
    lambda: kit.section("s", block_id="x" * 256),
    lambda: kit.context(*["c"] * 11),
])
def test_what_slack_would_refuse_and_cannot_be_clipped_raises(build: object) -> None:
    with pytest.raises(ValueError, match="Slack"):
        build()  # type: ignore[operator]
