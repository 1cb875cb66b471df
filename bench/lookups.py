"""How fast the pure lookup path is: parsing command text and rendering a page of runs.

Run: python -m bench.lookups
"""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bot.cde.models import RunPage
from bot.demo.runs import make_run
from bot.lookups.render import runs_list
from bot.query import MAX_LIMIT, ListRuns, parse

COMMANDS = [
    "runs site:1001 state:failed",
    "runs connector:019e16f3-bfa8-7390-9e63-3354f9aa2939 version:1.0.1 limit:20 from:40",
    "run 019e16f3-bfb8-7ed8-8d26-b7d40818d146",
    "runs state:faild",
]


def timed(label: str, fn: Callable[[], object], repeat: int) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    per_call = (time.perf_counter() - started) / repeat
    print(f"{label:<44} {per_call * 1e6:10.1f} µs/call  ({repeat} calls)")
    return per_call


def main() -> None:
    base = datetime(2025, 10, 29, tzinfo=UTC)
    page = RunPage.model_validate({
        "data": [make_run(state="failed" if i % 3 else "finished",
                          started_at=base + timedelta(minutes=i)) for i in range(MAX_LIMIT)],
        "metadata": {"from": 0, "limit": MAX_LIMIT, "count": MAX_LIMIT, "total": 500},
    })
    query = parse(f"runs state:failed limit:{MAX_LIMIT}")
    assert isinstance(query, ListRuns)

    parse_s = timed("parse (4 commands)", lambda: [parse(c) for c in COMMANDS], 5000)
    render_s = timed(f"render a page of {MAX_LIMIT} runs", lambda: runs_list(page, query), 500)
    tracemalloc.start()
    message = runs_list(page, query)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    size = len(json.dumps(message.as_kwargs()))
    print(f"{'peak memory to render one page':<44} {peak / 1024:10.1f} KiB")
    print(f"{'message size':<44} {size / 1024:10.1f} KiB, {len(message.blocks)} blocks of 50")
    print(f"{'render / parse ratio':<44} {render_s / (parse_s / len(COMMANDS)):10.1f}x")
    print("Slack's ack deadline is 3 s; both steps are pure CPU far below it.")


if __name__ == "__main__":
    main()
