"""`cde-bot check` in the test process, configured by environment like in production,
against the stand-ins: it passes, it fails one check with its fix, and it reports bad
settings. tests/e2e/test_check.py runs it once as a separate process.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.demo.api import SampleCdeApi
from bot.ops.check import main
from tests.helpers.bot_process import SECRETS, bot_env
from tests.standins.slack import SlackStandIn


async def run_check(env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the check with `env` as its environment; its exit status and report.

    In a thread: the check runs its own event loop, and the stand-ins must keep answering
    on the test's. The report is stdout; stderr has the log (at DEBUG with `bot_env`),
    which must not leak a secret either.
    """
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = await asyncio.to_thread(main)
    captured = capsys.readouterr()
    output, log = captured.out, captured.err
    assert not [secret for secret in SECRETS if secret in output + log], "a secret appeared in the output"
    assert "Traceback" not in output + log, output + log
    assert "\033[" not in output, "colour although stdout is not a terminal"
    return code, output


async def test_check_passes_in_http_mode(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    env = bot_env(slack, cde, socket_mode=False, database=tmp_path / "bot.db")
    (tmp_path / "bot.db").touch()  # check opens the database, it never creates one
    code, output = await run_check(env, monkeypatch, capsys)
    assert code == 0, output
    assert all(line.startswith("✓ ") for line in output.splitlines()), output
    assert "/slack/events" in output


async def test_check_fails_with_the_fix(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    env = bot_env(slack, cde, socket_mode=True, database=tmp_path / "bot.db")
    (tmp_path / "bot.db").touch()
    env["CDE_API_TOKEN"] = "cde-revoked-token-000000"
    code, output = await run_check(env, monkeypatch, capsys)
    assert code == 1, output
    lines = output.splitlines()
    assert "✗ CDE API — the token was rejected (401). Fix: set a valid CDE_API_TOKEN" in lines, output
    assert [line for line in lines if line.startswith("✗")] == [
        "✗ CDE API — the token was rejected (401). Fix: set a valid CDE_API_TOKEN"
    ]
    assert "cde-revoked-token-000000" not in output


async def test_check_fails_on_every_broken_connection(slack: SlackStandIn, cde: SampleCdeApi,
                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = bot_env(slack, cde, socket_mode=True, database=blocker / "bot.db")
    env |= {"SLACK_BOT_TOKEN": "xoxb-revoked-0000000", "SLACK_APP_TOKEN": "xapp-revoked-0000000",
            "CDE_API_URL": cde.url + "/elsewhere"}
    code, output = await run_check(env, monkeypatch, capsys)
    assert code == 1, output
    failed = [line for line in output.splitlines() if line.startswith("✗")]
    assert [line.split(" — ")[0] for line in failed] == [
        "✗ Slack bot token", "✗ Slack transport", "✗ CDE API", "✗ Store",
    ], output
    assert "Slack rejected SLACK_BOT_TOKEN (invalid_auth)" in failed[0]
    assert "Slack rejected SLACK_APP_TOKEN (invalid_auth)" in failed[1] and "connections:write" in failed[1]
    assert "(404). Fix: check CDE_API_URL" in failed[2]
    assert "DATABASE_URL" in failed[3]


async def test_check_reports_bad_settings(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, output = await run_check({"SLACK_BOT_TOKEN": "not-a-token", "LOG_LEVEL": "LOUD"},
                                   monkeypatch, capsys)
    assert code == 2, output  # bad settings: the same status as serve and console give
    assert output.startswith("✗ Settings — ")
    for name in ("SLACK_BOT_TOKEN", "CDE_API_TOKEN", "LOG_LEVEL", "SLACK_SIGNING_SECRET"):
        assert f"  - {name}:" in output
    assert "not-a-token" not in output
