"""`cde-bot check` as a separate process, configured by environment like in production,
against the stand-ins: it passes. Its failures, and the other transport, are tested in the
test process: tests/ops/test_check_main.py.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bot.demo.api import SampleCdeApi
from tests.helpers.bot_process import SECRETS, bot_env, child_environment
from tests.standins.slack import SlackStandIn


async def run_check(env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run the check (without blocking the stand-ins' event loop); its exit code and report.

    The report is stdout; stderr has the log (at DEBUG with `bot_env`), which must not leak
    a secret either.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "check", cwd=cwd,
        env=child_environment({**os.environ, **env, "PYTHONUNBUFFERED": "1"}),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    output, log = out.decode("utf-8", errors="replace"), err.decode("utf-8", errors="replace")
    assert process.returncode is not None
    assert not [secret for secret in SECRETS if secret in output + log], "a secret appeared in the output"
    assert "Traceback" not in output + log, output + log
    assert "\033[" not in output, "colour although stdout is not a terminal"
    return process.returncode, output


async def test_check_passes_against_working_services(slack: SlackStandIn, cde: SampleCdeApi,
                                                     tmp_path: Path) -> None:
    env = bot_env(slack, cde, socket_mode=True, database=tmp_path / "bot.db")
    (tmp_path / "bot.db").touch()  # check opens the database, it never creates one
    code, output = await run_check(env, tmp_path)
    assert code == 0, output
    lines = output.splitlines()
    assert [line.split(" — ")[0] for line in lines] == [
        "✓ Settings", "✓ Slack bot token", "✓ Slack transport", "✓ CDE API", "✓ Store",
    ], output
    assert "✓ Slack bot token — workspace Test as @cde-bot" in lines
    assert f"✓ CDE API — reachable at {cde.url}, token accepted (27 runs visible)" in lines
    assert os.listdir(tmp_path) == ["bot.db"]  # nothing created beside it
    # Nothing was posted anywhere.
    assert slack.calls_to("chat.postMessage") == []
