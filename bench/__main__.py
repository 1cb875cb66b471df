"""Every performance measure of the bot against its floor, measured in one run: one table
(goal, floor, bot, ratio, pass or miss) and, with --json, every figure behind it.

- Answers: the real bot against a bare Bolt app under load (`bench.load`).
- Polls: requests and CPU of the real `Poller` (`bench.poll`, `bench.notices`).
- Memory, start-up, notices: a soak of the real bot (`bench.soak`), its start to
  `/healthz` against a bare aiohttp app (`bench.startup`), failure-to-notice latency.

Machines are noisy: the floor is measured beside the bot in the same run, and the ratio is
what counts. A miss is work to do, not a failure of this command (it exits 0).

Run: python -m bench [--quick] [--json PATH] [--soak-minutes N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import load, notices, poll, soak, startup


def _row(measure: str, goal: str, floor: str, bot: str, ratio: float | None,
         met: bool | None) -> dict[str, Any]:
    return {"measure": measure, "goal": goal, "floor": floor, "bot": bot,
            "ratio": None if ratio is None else round(ratio, 2), "met": met}


def _count(number: int) -> str:
    return f"{number:,}".replace(",", " ")


def poll_rows(quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    cpu = poll.match_benchmark((1, 10_000))
    window = asyncio.run(poll.window_benchmark(3_000 if quick else 10_000))
    requests = asyncio.run(notices.poll_requests())
    failed = window["failed"]
    rows = [
        _row("poll, nothing new, 1 subscription", "1 request", "1 request",
             f"{requests['nothing_new']} request(s)", None, requests["nothing_new"] == 1),
        _row("poll CPU, 100 failed runs × 10 000 subscriptions", "≤ 50 ms", f"{cpu[1] * 1e3:.1f} ms (1 sub.)",
             f"{cpu[10_000] * 1e3:.1f} ms", cpu[10_000] / cpu[1], cpu[10_000] <= 0.050),
        _row(f"poll, {_count(failed)} failed runs in the window",
             "≤ 10 requests a poll, every failure told once", "—",
             f"≤ {window['max_requests']} a poll; {window['told']} told, {window['twice']} twice, "
             f"in {window['polls']} polls", None,
             window["max_requests"] <= 10 and window["told"] == failed and window["twice"] == 0),
        _row(f"poll, {_count(requests['open_incidents'])} open incidents", "≤ 20 requests",
             "—", f"{requests['with_open_incidents']} requests", None,
             requests["with_open_incidents"] <= 20),
    ]
    return rows, {"match_cpu_seconds": cpu, "window": window, "requests": requests}


def startup_rows(quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    figures = startup.startup_figures(3 if quick else 10)
    floor, bot = figures["bare aiohttp"]["median"], figures["bot http"]["median"]
    return [_row("start to /healthz 200 (median)", "< 1.5 s", f"{floor * 1e3:.0f} ms (bare aiohttp)",
                 f"{bot * 1e3:.0f} ms", bot / floor, bot < 1.5)], figures


def notice_rows(quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    figures = asyncio.run(notices.latency(interval=1.0 if quick else 2.0, failures=2 if quick else 5))
    goal = figures["goal_seconds"]
    return [_row(f"failure to notice, poll every {figures['interval']:g} s (max)",
                 f"≤ {goal:g} s (interval + 1 s)", "—", f"{figures['max_seconds']:.2f} s", None,
                 figures["max_seconds"] <= goal)], figures


def soak_rows(minutes: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    figures = asyncio.run(soak.run(minutes, 10.0))
    judged = minutes >= 30
    return [_row(f"RSS over a {minutes:g}-minute soak", "last 20% within 5% (≥ 30 min)",
                 f"{figures['rss_at_last_fifth_mb']} MB at the last fifth",
                 f"{figures['rss_end_mb']} MB at the end; ±{figures['last_fifth_within']}%, "
                 f"{figures['slope_mb_per_minute']} MB/min; DB {figures['db_end_kb']:.0f} KB",
                 None, figures["plateau"] if judged else None)], figures


def load_rows(quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    results = asyncio.run(load.measure(load.Plan.quick() if quick else load.Plan()))
    return load.rows(results), results


def print_table(rows: list[dict[str, Any]]) -> None:
    columns = ("measure", "goal", "floor", "bot", "ratio", "")
    cells = [[row["measure"], row["goal"], row["floor"], row["bot"],
              "—" if row["ratio"] is None else f"{row['ratio']:.2f}×",
              {True: "pass", False: "MISS", None: "—"}[row["met"]]] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="shorter phases, fewer starts, no soak: under a minute")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every figure as JSON to PATH")
    parser.add_argument("--soak-minutes", type=float, default=30.0,
                        help="length of the memory soak (default 30; 0 to leave it out)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    parts: list[tuple[str, Callable[[], tuple[list[dict[str, Any]], dict[str, Any]]]]] = [
        ("answers", lambda: load_rows(args.quick)),
        ("polls", lambda: poll_rows(args.quick)),
        ("start-up", lambda: startup_rows(args.quick)),
        ("notices", lambda: notice_rows(args.quick)),
    ]
    if args.soak_minutes and not args.quick:
        parts.append(("memory", lambda: soak_rows(args.soak_minutes)))
    rows: list[dict[str, Any]] = []
    figures: dict[str, Any] = {}
    for name, part in parts:
        print(f"-- {name}", flush=True)
        part_rows, figures[name] = part()
        rows += part_rows
    print()
    print_table(rows)
    took = time.monotonic() - started
    missed = sum(row["met"] is False for row in rows)
    print(f"\n{len(rows)} measures, {missed} missed, in {took:.0f} s "
          f"({'quick' if args.quick else 'full'} run, {platform.python_implementation()} "
          f"{platform.python_version()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "figures": figures, "seconds": round(took, 1),
                                         "quick": args.quick}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
