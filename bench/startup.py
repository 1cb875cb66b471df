"""How long `cde-bot serve` takes from spawn to its first `/healthz` 200, in both transports,
against the Slack stand-in and the sample CDE API on loopback.

The floor is measured in the same run, started the same way: `python -c pass` (spawn to
exit: the interpreter alone) and a bare aiohttp app answering `/healthz` (spawn to first
200: the interpreter, aiohttp and a listening socket). The bot's figures are also given as
a ratio to the bare app's, which says more than seconds on a machine of unknown speed.

The bot runs from a copy of `bot/` with its bytecode compiled, as `pip install` leaves it
in the image, and once more (HTTP mode) from a copy without bytecode under
PYTHONDONTWRITEBYTECODE=1: a checkout run that way compiles every module of the bot at
every start. Copies, so that whatever the checkout's `__pycache__` holds counts for neither.

Run: python -m bench.startup [--starts N]
Import: `startup_figures()` returns the figures as a dict.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from tests.helpers.bot_process import SOURCE_ROOT, BotProcess, bot_env, child_environment, free_port
from tests.helpers.sample import new_cde, new_slack

STARTS = 10
# `/healthz` is asked again this often until it answers 200: a few ms of resolution, and
# little enough CPU taken from the child on a machine of two.
POLL_SECONDS = 0.005
TIMEOUT_SECONDS = 30.0
BARE_APP = """
import os
from aiohttp import web

async def healthz(request):
    return web.json_response({"ready": True})

app = web.Application()
app.router.add_get("/healthz", healthz)
web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]), print=None)
"""


# One start: seconds from spawn to the first 200, and CPU seconds the child had used by then.
Sample = tuple[float, float]


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds process `pid` has used so far (Linux: /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _first_200(session: aiohttp.ClientSession, url: str, process: asyncio.subprocess.Process,
                     started: float) -> Sample:
    """Seconds from `started` to the first 200 from `url`, and the CPU seconds `process` had
    used then; fails if the process exits first."""
    deadline = started + TIMEOUT_SECONDS
    while time.perf_counter() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"the process exited with {process.returncode} before answering")
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return time.perf_counter() - started, _cpu_seconds(process.pid)
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(POLL_SECONDS)
    raise RuntimeError(f"no 200 from {url} within {TIMEOUT_SECONDS} s")


async def _python_pass() -> Sample:
    """Spawn to exit of `python -c pass`, in the environment the bot gets."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass",
                                                   env=child_environment(dict(os.environ)))
    await process.wait()
    seconds = time.perf_counter() - started
    # The only child to end meanwhile: the others are stopped before the next one starts.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return seconds, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


async def _bare_app(session: aiohttp.ClientSession) -> Sample:
    port = free_port()
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", BARE_APP, env=child_environment({**os.environ, "PORT": str(port)}))
    try:
        return await _first_200(session, f"http://127.0.0.1:{port}/healthz", process, started)
    finally:
        process.terminate()
        await process.wait()


def _source_copy(directory: Path, *, compiled: bool) -> str:
    """A copy of the `bot` package in `directory`, its bytecode compiled or not; the root to
    import it from."""
    shutil.copytree(Path(SOURCE_ROOT) / "bot", directory / "bot",
                    ignore=shutil.ignore_patterns("__pycache__"))
    if compiled:
        compileall.compile_dir(directory / "bot", quiet=1)
    return str(directory)


async def _bot(session: aiohttp.ClientSession, env: dict[str, str], directory: Path, source: str) -> Sample:
    # A new database each time: the first start of a deployment, which creates the schema.
    bot = BotProcess(env | {"DATABASE_URL": f"sqlite+aiosqlite:///{directory / 'bot.db'}"},
                     directory / "bot.log", source_root=source)
    started = time.perf_counter()
    await bot.start(wait_ready=False)
    assert bot.process is not None
    try:
        return await _first_200(session, f"{bot.url}/healthz", bot.process, started)
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}:\n{bot.log()}") from None
    finally:
        await bot.stop()


def _summary(samples: list[Sample]) -> dict[str, float]:
    seconds = [wall for wall, _ in samples]
    return {"median": statistics.median(seconds), "max": max(seconds), "min": min(seconds),
            "cpu median": statistics.median(cpu for _, cpu in samples)}


MODES = ("bot http", "bot socket", "bot http, no bytecode")


async def _measure(starts: int) -> dict[str, Any]:
    samples: dict[str, list[Sample]] = {name: [] for name in ("python -c pass", "bare aiohttp", *MODES)}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        compiled = _source_copy(Path(tmp) / "compiled", compiled=True)
        source_only = _source_copy(Path(tmp) / "source", compiled=False)
        async with new_slack() as slack, new_cde() as cde, aiohttp.ClientSession() as session:
            # The log level of production, not the tests' DEBUG; no bytecode written, so that
            # the copy without it stays so.
            runs = {mode: (bot_env(slack, cde, socket_mode=mode == "bot socket")
                           | {"LOG_LEVEL": "INFO", "PYTHONDONTWRITEBYTECODE": "1"},
                           source_only if mode.endswith("no bytecode") else compiled)
                    for mode in MODES}
            # Interleaved, so that a slower minute of the machine weighs on every figure alike.
            for start in range(starts):
                samples["python -c pass"].append(await _python_pass())
                samples["bare aiohttp"].append(await _bare_app(session))
                for mode, (env, source) in runs.items():
                    directory = Path(tmp) / f"{mode.replace(' ', '-').replace(',', '')}-{start}"
                    directory.mkdir()
                    samples[mode].append(await _bot(session, env, directory, source))
    figures: dict[str, Any] = {name: _summary(values) for name, values in samples.items()}
    floor = figures["bare aiohttp"]["median"]
    for mode in MODES:
        figures[mode]["median / bare aiohttp"] = figures[mode]["median"] / floor
        figures[mode]["cpu median / bare aiohttp"] = (figures[mode]["cpu median"]
                                                      / figures["bare aiohttp"]["cpu median"])
    figures["starts"] = starts
    return figures


def startup_figures(starts: int = STARTS) -> dict[str, Any]:
    """Seconds from spawn to the first `/healthz` 200 (to exit for `python -c pass`): median,
    max and min over `starts` starts of each, the median of the CPU seconds the child had used
    by then, and each mode's medians over the bare app's.
    """
    return asyncio.run(_measure(starts))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=STARTS, help=f"starts of each (default: {STARTS})")
    starts = parser.parse_args(argv).starts
    figures = startup_figures(starts)
    print(f"Spawn to first /healthz 200 (python -c pass: to exit), {starts} starts each, "
          f"{os.cpu_count()} CPUs:")
    for name in ("python -c pass", "bare aiohttp", *MODES):
        row = figures[name]
        ratio = row.get("median / bare aiohttp")
        shown = f"  {ratio:4.1f}x bare aiohttp" if ratio is not None else ""
        print(f"  {name:<22} median {row['median'] * 1000:5.0f} ms  max {row['max'] * 1000:5.0f} ms"
              f"  min {row['min'] * 1000:5.0f} ms{shown}")
    print("CPU seconds the child had used by then (steadier than the above on a busy machine):")
    for name in ("python -c pass", "bare aiohttp", *MODES):
        row = figures[name]
        ratio = row.get("cpu median / bare aiohttp")
        shown = f"  {ratio:4.1f}x bare aiohttp" if ratio is not None else ""
        print(f"  {name:<22} median {row['cpu median'] * 1000:5.0f} ms{shown}")
    print(f"Load average now: {' '.join(f'{load:.1f}' for load in os.getloadavg())} "
          "(other work on the machine slows every figure above)")


if __name__ == "__main__":
    main()
