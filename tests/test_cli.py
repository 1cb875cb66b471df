"""The `cde-bot` command line: help without a command, a description for every sub-command,
the settings in `serve --help`, and one exit status for bad settings in every sub-command.
"""

from __future__ import annotations

import argparse

import pytest

from bot.__main__ import build_parser, main
from bot.config import Settings


def sub_commands() -> dict[str, argparse.ArgumentParser]:
    [commands] = [action for action in build_parser()._actions
                  if isinstance(action, argparse._SubParsersAction)]
    return dict(commands.choices)


def test_no_command_prints_help_and_reads_no_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("usage: cde-bot")
    for name in sub_commands():
        assert name in captured.out
    assert "settings" not in captured.err and captured.err == ""


@pytest.mark.parametrize("name", ["serve", "check", "console", "demo", "demo-api"])
def test_every_sub_command_has_a_description(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = sub_commands()[name]
    assert parser.description and len(parser.description) > 40
    with pytest.raises(SystemExit) as exited:
        main([name, "--help"])
    assert exited.value.code == 0
    usage, description = capsys.readouterr().out.split("\n\n")[:2]
    assert usage.startswith(f"usage: cde-bot {name}") and description.split()[0].istitle()


def test_serve_help_lists_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for name, field in Settings.model_fields.items():
        assert f"  {name.upper()} " in out
        assert field.description is not None
        first_words = " ".join(field.description.split()[:3])
        assert first_words in " ".join(out.split()), name
    assert "SLACK_BOT_TOKEN           required:" in out


@pytest.mark.parametrize("command", [["serve"], ["check"], ["console"]])
def test_bad_settings_give_the_same_exit_status_everywhere(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # The test's environment has no settings at all (tests/conftest.py).
    assert main(command) == 2  # bot.ops.exits.EXIT_SETTINGS
    captured = capsys.readouterr()
    assert "CDE_API_TOKEN" in captured.out + captured.err
