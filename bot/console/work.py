"""The work a console command started, and nothing else.

Bolt acks a command and runs its listener in a task of its own; the console waits for that
task (and the tasks it starts in turn) before it prompts again. Tasks are told apart by the
context they were created in: a task created while a command is being dispatched inherits
that command's marker, so the listener and its children are counted, while the connection
handlers of servers on the same loop (the local Slack, the demo CDE API), the poller and
the stdin reader, which were started elsewhere, are not.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")

# A guard only: a command's work normally ends in well under a second.
WORK_TIMEOUT = 60.0

_started: contextvars.ContextVar[set[asyncio.Task[Any]] | None] = contextvars.ContextVar(
    "console_command_tasks", default=None)


def track_command_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Make `loop` note which command, if any, each new task was started for."""
    previous = loop.get_task_factory()

    def factory(loop: asyncio.AbstractEventLoop,
                coro: Generator[Any, None, Any] | Coroutine[Any, Any, Any],
                **kwargs: Any) -> asyncio.Future[Any]:
        if previous is not None:
            task = previous(loop, coro, **kwargs)
        else:
            task = asyncio.Task(coro, loop=loop, **kwargs)
        started = _started.get()
        if started is not None and isinstance(task, asyncio.Task):
            started.add(task)
        return task

    loop.set_task_factory(factory)


async def run_command(work: Awaitable[T], *, timeout: float = WORK_TIMEOUT) -> tuple[T, bool]:
    """Await `work`, then every task it started (and those they started); its result and
    whether all of that ended within `timeout` seconds.
    """
    started: set[asyncio.Task[Any]] = set()
    marker = _started.set(started)
    try:
        result = await work
    finally:
        _started.reset(marker)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    # A task may start others while it runs: look again until none is left running.
    while pending := {task for task in started if not task.done()}:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return result, False
        await asyncio.wait(pending, timeout=remaining)
    return result, True
