"""`cde-bot demo-api`: the sample CDE API on its own, producing new runs as it goes."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from bot.demo.api import DEMO_TOKEN, SampleCdeApi, keep_producing, reference_runs
from bot.demo.history import DemoHistory

NEW_RUN_SECONDS = 10.0


async def serve_demo_api(host: str, port: int, *, new_run_seconds: float = NEW_RUN_SECONDS) -> None:
    """Serve until SIGTERM/SIGINT."""
    history = DemoHistory()
    api = SampleCdeApi(reference_runs() + history.past(), token=DEMO_TOKEN)
    await api.start(host, port)
    producer = asyncio.create_task(keep_producing(api, history, new_run_seconds))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    print(f"Sample CDE API with {len(api.runs)} runs, a new one every {new_run_seconds:g} s.\n"
          f"Point cde-bot at it with:\n"
          f"  CDE_API_URL=http://{host}:{api.port} CDE_API_TOKEN={DEMO_TOKEN}\n"
          f"Try: curl -H 'Authorization: Bearer {DEMO_TOKEN}' "
          f"'http://{host}:{api.port}/runs?state=failed&limit=2'", flush=True)
    try:
        await stop.wait()
    finally:
        producer.cancel()
        await api.stop()
