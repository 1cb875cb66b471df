"""python -m bench.hostile [--quick] [--json PATH] [--only NAME]: run the cases, print the
table (and the reasons of every miss), write the figures as JSON.

One case that crashes never stops the others: it is reported as crashed, with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from bench.hostile import cases_access, cases_cde, cases_requests, cases_secrets, cases_slack, cases_store
from bench.hostile.cases import CASES, Case
from bench.hostile.census import CaseResult, Observation, as_json, crashed, details, table, totals, verdict

# The modules register their cases on import; named here so that none is left out.
FAMILIES = (cases_cde, cases_slack, cases_store, cases_requests, cases_secrets, cases_access)
# A case that has not ended by then is stuck: it is counted as crashed and the next starts.
CASE_TIMEOUT = 90.0


async def run_case(entry: Case, quick: bool) -> CaseResult:
    seen = Observation()
    started = time.monotonic()
    try:
        await asyncio.wait_for(entry.run(seen, quick), CASE_TIMEOUT)
    except TimeoutError as exc:
        seconds = time.monotonic() - started
        stuck = TimeoutError(f"still running after {CASE_TIMEOUT:.0f} s") if seconds >= CASE_TIMEOUT else exc
        return crashed(entry.family, entry.name, seen, stuck, seconds)
    except Exception as exc:  # noqa: BLE001 - one case's crash is its result, not the census's end
        return crashed(entry.family, entry.name, seen, exc, time.monotonic() - started)
    return verdict(entry.family, entry.name, seen, time.monotonic() - started)


def in_order() -> list[Case]:
    """Every case, family module by family module in the order of `FAMILIES`."""
    rank = {module.__name__: index for index, module in enumerate(FAMILIES)}
    return sorted(CASES, key=lambda c: rank.get(c.run.__module__, len(rank)))


def selected(only: str | None) -> list[Case]:
    if only is None:
        return in_order()
    chosen = [c for c in in_order() if only in (c.name, c.family, f"{c.family}/{c.name}")]
    if not chosen:
        names = ", ".join(f"{c.family}/{c.name}" for c in CASES)
        raise SystemExit(f"no case or family named {only!r}; the cases: {names}")
    return chosen


async def census(chosen: Sequence[Case], quick: bool) -> list[CaseResult]:
    results = []
    for entry in chosen:
        result = await run_case(entry, quick)
        print(f"{result.status:>13}  {entry.family}/{entry.name}  ({result.seconds:.1f} s)",
              file=sys.stderr, flush=True)
        results.append(result)
    return results


def commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=Path(__file__).parent)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip() or None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs, for a run under 2 minutes")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the figures as JSON to PATH")
    parser.add_argument("--only", metavar="NAME", help="run one case (or one family) by name")
    parser.add_argument("--list", action="store_true", help="list the cases and what each tries")
    args = parser.parse_args(argv)
    if args.list:
        for entry in in_order():
            print(f"{entry.family}/{entry.name}: {entry.about}")
        return 0
    chosen = selected(args.only)
    # The bot's own warnings go to the log the cases read; Python's would only clutter the table.
    warnings.simplefilter("ignore")
    logging.getLogger().setLevel(logging.WARNING)
    started = time.monotonic()
    results = asyncio.run(census(chosen, args.quick))
    print()
    print(table(totals(results)))
    missed = details(results)
    if missed:
        print("\nCases that did not survive:\n" + missed)
    print(f"\n{len(results)} case(s) in {time.monotonic() - started:.0f} s; "
          f"reproduce: python -m bench.hostile{' --quick' if args.quick else ''}")
    if args.json is not None:
        args.json.write_text(as_json(results, quick=args.quick, commit=commit()) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
