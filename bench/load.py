"""Answers under load: the real bot against a bare Bolt app (the floor), side by side.

Both run as child processes in HTTP mode, on loopback, and get the same signed `/cde
run <id>` commands; the bot asks a CDE stand-in that answers after 100 ms, the floor
answers with a constant. Measured for each, in the same run (only ratios count on a
shared machine):

- ack latency at a steady rate (open loop: commands go out on schedule, whatever the
  answers do);
- answers per second at saturation (a fixed number of commands in flight, each sent as
  soon as the one before it is answered), and acks slower than Slack's 3 s;
- CPU seconds per answered command (the child's own, from /proc);
- the bot's own time on an answer: from the command sent to its answer at the
  `response_url`, less the time the CDE API itself took for that command's request.

Run: python -m bench.load [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.standins import LeanCde, ResponseCatcher, serve
from bot.slack.client import EVENTS_PATH
from tests.helpers.bot_process import BOT_TOKEN, CDE_TOKEN, SIGNING_SECRET, child_environment, free_port
from tests.standins.slack import SlackStandIn, encode_slash_command, sign_request, slash_command_payload

ACK_DEADLINE = 3.0  # Slack shows the user an error when the ack takes longer
ANSWER_TIMEOUT = 30.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    ack: float
    answer: float | None
    own: float | None


@dataclass
class Phase:
    """What one phase of load measured on one target."""

    sent: int = 0
    answered: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    acks_over_deadline: int = 0
    errors: int = 0
    samples: list[Sample] = field(default_factory=list, repr=False)

    def ack_p(self, q: float) -> float:
        return _quantile([s.ack for s in self.samples], q)

    def own_p(self, q: float) -> float | None:
        owns = [s.own for s in self.samples if s.own is not None]
        return _quantile(owns, q) if owns else None

    @property
    def rate(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_answer(self) -> float:
        return self.cpu_seconds / self.answered if self.answered else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "sent": self.sent, "answered": self.answered, "seconds": round(self.seconds, 3),
            "answers_per_second": round(self.rate, 1),
            "ack_p50_ms": round(self.ack_p(0.5) * 1e3, 2),
            "ack_p99_ms": round(self.ack_p(0.99) * 1e3, 2),
            "own_p50_ms": _ms(self.own_p(0.5)), "own_p99_ms": _ms(self.own_p(0.99)),
            "cpu_ms_per_answer": round(self.cpu_per_answer * 1e3, 2),
            "acks_over_3s": self.acks_over_deadline, "errors": self.errors,
        }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1e3, 2)


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[min(998, int(q * 1000) - 1)]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class Target:
    """A child process answering `/cde` at `url`."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    process: asyncio.subprocess.Process | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, workdir: Path) -> None:
        self.log = workdir / f"{self.name}.log"
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, stdout=log, stderr=log, cwd=str(workdir))
        await self._wait_listening()

    async def _wait_listening(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.returncode is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: "
                                   f"{self.log.read_text() if self.log else ''}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                await writer.wait_closed()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen within {timeout} s")

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


@dataclass
class Driver:
    """Sends signed commands to a target and waits for their answers."""

    session: aiohttp.ClientSession
    catcher: ResponseCatcher
    catcher_url: str
    cde: LeanCde
    through_api: bool  # whether the target asks the CDE API (the floor does not)

    async def one(self, target: Target, phase: Phase) -> None:
        run_id = str(uuid.uuid4())
        payload = slash_command_payload(f"run {run_id}", response_url=f"{self.catcher_url}/respond/{run_id}")
        body = encode_slash_command(payload)
        answered = self.catcher.expect(run_id)
        phase.sent += 1
        started = time.monotonic()
        try:
            async with self.session.post(f"{target.url}{EVENTS_PATH}", data=body, headers={
                "Content-Type": "application/x-www-form-urlencoded", **sign_request(SIGNING_SECRET, body),
            }) as response:
                await response.read()
                ok = response.status == 200
            ack = time.monotonic() - started
            if ack > ACK_DEADLINE:
                phase.acks_over_deadline += 1
            if not ok:
                phase.errors += 1
                return
            answer = await asyncio.wait_for(answered, ANSWER_TIMEOUT)
        except (aiohttp.ClientError, TimeoutError):
            phase.errors += 1
            return
        took = answer.at - started
        api = self.cde.api_seconds.pop(run_id, None)
        own = took - api if self.through_api and api is not None else (None if self.through_api else took)
        phase.answered += 1
        phase.samples.append(Sample(ack, took, own))

    async def steady(self, target: Target, rate: float, seconds: float) -> Phase:
        """Commands at `rate` per second for `seconds`, on schedule (open loop)."""
        phase = Phase()
        cpu = cpu_seconds(target.pid)
        started = time.monotonic()
        tasks = []
        count = int(rate * seconds)
        for i in range(count):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.one(target, phase)))
        await asyncio.gather(*tasks)
        phase.seconds = time.monotonic() - started
        phase.cpu_seconds = cpu_seconds(target.pid) - cpu
        return phase

    async def saturate(self, target: Target, in_flight: int, seconds: float) -> Phase:
        """`in_flight` commands at all times for `seconds` (closed loop)."""
        phase = Phase()
        cpu = cpu_seconds(target.pid)
        started = time.monotonic()
        deadline = started + seconds

        async def worker() -> None:
            while time.monotonic() < deadline:
                await self.one(target, phase)

        await asyncio.gather(*(worker() for _ in range(in_flight)))
        phase.seconds = time.monotonic() - started
        phase.cpu_seconds = cpu_seconds(target.pid) - cpu
        return phase


@dataclass(frozen=True)
class Plan:
    rate: float = 40.0
    steady_seconds: float = 15.0
    in_flight: int = 50
    saturate_seconds: float = 10.0
    warm_up_seconds: float = 2.0

    @classmethod
    def quick(cls) -> Plan:
        return cls(steady_seconds=5.0, saturate_seconds=3.0, warm_up_seconds=1.0)


def _targets(slack: SlackStandIn, cde_url: str, workdir: Path) -> list[Target]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CDE_", "DATABASE_"))}
    floor_port, bot_port = free_port(), free_port()
    floor_env = child_environment({**base, "PORT": str(floor_port), "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                                   "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": slack.base_url})
    bot_env = child_environment({
        **base, "PORT": str(bot_port), "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": slack.base_url,
        "CDE_API_URL": cde_url, "CDE_API_TOKEN": CDE_TOKEN,
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bot.db'}",
    })
    return [
        Target("floor", [sys.executable, "-m", "bench.floor_app"], floor_env, floor_port),
        Target("bot", [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1"], bot_env, bot_port),
    ]


async def _profile(target: Target, folder: Path | None,
                   seconds: float) -> asyncio.subprocess.Process | None:
    """py-spy sampling `target` for `seconds` (collapsed stacks in `folder`), when asked."""
    if folder is None:
        return None
    return await asyncio.create_subprocess_exec(
        "py-spy", "record", "--pid", str(target.pid), "--duration", str(int(seconds)), "--rate", "250",
        "--format", "raw", "--nonblocking", "-o", str(folder / f"{target.name}.txt"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


async def measure(plan: Plan, profile: Path | None = None) -> dict[str, Any]:
    """Every load figure for the floor and the bot, measured in this run."""
    cde = LeanCde(latency=0.1)
    catcher = ResponseCatcher()
    runners = []
    results: dict[str, Any] = {"plan": asdict(plan)}
    with tempfile.TemporaryDirectory(prefix="cde-bench-") as tmp:
        workdir = Path(tmp)
        async with SlackStandIn(BOT_TOKEN, "xapp-unused", SIGNING_SECRET) as slack:
            for app in (cde.app(), catcher.app()):
                runners.append(await serve(app))
            cde_url, catcher_url = runners[0][1], runners[1][1]
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as session:
                for target in _targets(slack, cde_url, workdir):
                    driver = Driver(session, catcher, catcher_url, cde, through_api=target.name == "bot")
                    await target.start(workdir)
                    try:
                        await driver.steady(target, plan.rate / 2, plan.warm_up_seconds)
                        steady = await driver.steady(target, plan.rate, plan.steady_seconds)
                        profiler = await _profile(target, profile, plan.saturate_seconds)
                        saturated = await driver.saturate(target, plan.in_flight, plan.saturate_seconds)
                        if profiler is not None:
                            await profiler.wait()
                    finally:
                        await target.stop()
                    results[target.name] = {"steady": steady.summary(), "saturated": saturated.summary()}
            for runner, _ in runners:
                await runner.cleanup()
    return results


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The table's rows: measure, goal, floor, bot, ratio, whether the goal is met."""
    floor, bot = results["floor"], results["bot"]
    rate = results["plan"]["rate"]
    in_flight = results["plan"]["in_flight"]
    ack_floor, ack_bot = floor["steady"]["ack_p99_ms"], bot["steady"]["ack_p99_ms"]
    sat_floor, sat_bot = floor["saturated"]["answers_per_second"], bot["saturated"]["answers_per_second"]
    cpu_floor, cpu_bot = floor["steady"]["cpu_ms_per_answer"], bot["steady"]["cpu_ms_per_answer"]
    own = bot["steady"]["own_p99_ms"]
    slow_acks = bot["saturated"]["acks_over_3s"]
    return [
        _row(f"ack p99 at {rate:g} commands/s", "≤ 1.1×", f"{ack_floor:.1f} ms", f"{ack_bot:.1f} ms",
             ack_bot / ack_floor, ack_bot / ack_floor <= 1.1),
        _row(f"answers/s with {in_flight} in flight", "≥ 0.7×, 0 acks over 3 s", f"{sat_floor:.0f}/s",
             f"{sat_bot:.0f}/s, {slow_acks} acks over 3 s", sat_bot / sat_floor,
             sat_bot / sat_floor >= 0.7 and slow_acks == 0),
        _row("CPU per answered lookup", "≤ floor + 3 ms", f"{cpu_floor:.2f} ms", f"{cpu_bot:.2f} ms",
             cpu_bot / cpu_floor, cpu_bot - cpu_floor <= 3.0),
        _row(f"own time on an answer, p99 at {rate:g}/s", "≤ 15 ms", "—", f"{own:.1f} ms", None,
             own is not None and own <= 15.0),
    ]


def _row(measure: str, goal: str, floor: str, bot: str, ratio: float | None, met: bool) -> dict[str, Any]:
    return {"measure": measure, "goal": goal, "floor": floor, "bot": bot,
            "ratio": None if ratio is None else round(ratio, 2), "met": met}


def print_table(table: list[dict[str, Any]]) -> None:
    columns = ("measure", "goal", "floor", "bot", "ratio", "met")
    cells = [[str(row[c]) if c != "ratio" else ("—" if row[c] is None else f"{row[c]:.2f}×")
              for c in columns[:-1]] + ["pass" if row["met"] else "MISS"] for row in table]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter phases")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the figures as JSON to PATH")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="sample both targets with py-spy at saturation; collapsed stacks in DIR")
    args = parser.parse_args(argv)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    results = asyncio.run(measure(Plan.quick() if args.quick else Plan(), args.profile))
    for name in ("floor", "bot"):
        for phase in ("steady", "saturated"):
            print(f"{name:5} {phase:9} {json.dumps(results[name][phase])}")
    table = rows(results)
    print_table(table)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "rows": table}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
