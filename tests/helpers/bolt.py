"""In-process scenarios, the way bolt-python tests itself: the real `AsyncApp` (built by
`build_app` and `register`), signed `AsyncBoltRequest`s given to `async_dispatch`, the Slack
stand-in as Web API and response_url target, and the sample CDE API behind the lookups.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.access import UNBOUNDED, Access, AccessPolicy
from bot.cde.client import NO_WAIT_RETRY, CdeClient
from bot.cde.models import Run
from bot.config import Settings
from bot.demo.api import SampleCdeApi
from bot.lookups.runs import no_links
from bot.lookups.service import Lookups
from bot.notices import render as render_notices
from bot.notices.models import Incident
from bot.notices.oncall import OnCall
from bot.notices.subscriptions import Subscriptions
from bot.ops.metrics import Metrics
from bot.services import Services
from bot.slack.app import build_app, register
from bot.slack.client import web_client
from bot.slack.poster import SlackPoster
from bot.slack.usergroups import SlackGroups
from bot.store.sql import SqlStore, store_from_url
from tests.helpers.sample import FAILED_RUN, sample_runs
from tests.standins.slack import (
    SlackStandIn,
    block_actions_payload,
    encode_interaction,
    encode_slash_command,
    sign_request,
    slash_command_payload,
)

BOT_TOKEN = "xoxb-in-process-bot-token-0123"
SIGNING_SECRET = "in-process-signing-secret-0123"
CDE_TOKEN = "cde-in-process-token-0123"
OPS = "C0001"
# A click on a button of an ephemeral answer carries this container, as Slack sends it.
EPHEMERAL = {"type": "message", "message_ts": "1700000000.000001", "channel_id": OPS,
             "is_ephemeral": True}
# How long a listener may take once acked before a scenario gives up on it.
LISTENER_TIMEOUT = 20.0


@dataclass(frozen=True)
class Sent:
    """What came back for one request: the ack's status and body, and the response_url
    the request carried (where its answers went).
    """

    status: int
    body: str
    response_url: str

    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


class BoltScenario:
    """The app, its stand-ins and its store, and requests to send it."""

    def __init__(self, app: AsyncApp, slack: SlackStandIn, cde: SampleCdeApi, store: SqlStore,
                 services: Services) -> None:
        self.app, self.slack, self.cde, self.store, self.services = app, slack, cde, store, services

    @property
    def metrics(self) -> Metrics:
        assert self.services.metrics is not None
        return self.services.metrics

    async def dispatch(self, body: bytes, *, secret: str = SIGNING_SECRET,
                       timestamp: int | None = None) -> BoltResponse:
        """Sign `body` as Slack would, dispatch it, and wait for the listener it started."""
        headers: dict[str, str | Sequence[str]] = {"content-type": ["application/x-www-form-urlencoded"]}
        signature = sign_request(secret, body, timestamp)
        headers.update((name.lower(), [value]) for name, value in signature.items())
        with _tasks_created() as created:
            response = await self.app.async_dispatch(AsyncBoltRequest(body=body.decode(), headers=headers))
        await _listeners_done(response, created)
        return response

    async def command(self, text: str, *, channel: str = OPS, user: str = "U0001",
                      secret: str = SIGNING_SECRET, timestamp: int | None = None) -> Sent:
        """`/cde text` typed by `user` in `channel`."""
        url = self.slack.new_response_url(channel_id=channel, user_id=user)
        payload = slash_command_payload(text, response_url=url, channel_id=channel, user_id=user)
        response = await self.dispatch(encode_slash_command(payload), secret=secret, timestamp=timestamp)
        return Sent(response.status, response.body, url)

    async def click(self, action_id: str, message: dict[str, Any] | None = None, *,
                    channel: str = OPS, user: str = "U0001", selected: str | None = None,
                    value: str | None = None, container: dict[str, Any] | None = None) -> Sent:
        """A click on `action_id` in `message` (or a menu choice `selected`)."""
        url = self.slack.new_response_url(channel_id=channel, user_id=user)
        payload = block_actions_payload(action_id, value, response_url=url, message=message,
                                        channel_id=channel, user_id=user, container=container)
        if selected is not None:
            payload["actions"][0].update(type="static_select", selected_option={
                "text": {"type": "plain_text", "text": selected}, "value": selected})
        response = await self.dispatch(encode_interaction(payload))
        return Sent(response.status, response.body, url)

    async def click_ephemeral(self, action_id: str, answer: dict[str, Any], **kwargs: Any) -> Sent:
        """A click on a button of an ephemeral answer."""
        return await self.click(action_id, answer, container=EPHEMERAL, **kwargs)

    async def post_notice(self, run_id: str = FAILED_RUN, *, channel: str = OPS,
                          **changes: Any) -> tuple[Incident, dict[str, Any]]:
        """A notice of the failed run `run_id` posted in `channel` as the poller posts one,
        with its incident stored: the incident and the message as Slack holds it.
        """
        [found] = [r for r in self.cde.runs if r["id"] == run_id]
        run = Run.model_validate(found)
        when = run.finished_at or datetime.now(UTC)
        draft = Incident(id=0, channel_id=channel, site_id=run.site_id, connector_id=run.connector_id,
                         message_ts="", run=run.model_dump(mode="json", by_alias=True), failures=1,
                         muted_failures=0, first_failed_at=when, last_failed_at=when)
        ts = await self.services.oncall.poster.post(channel, render_notices.notice(draft))
        incident = await self.store.save_incident(replace(draft, message_ts=ts, **changes))
        message = self.slack.message(channel, ts)
        assert message is not None
        return incident, message

    def answers(self, sent: Sent) -> list[dict[str, Any]]:
        """What Slack accepted on the request's response_url."""
        return self.slack.responses(sent.response_url)


# The name of the coroutine Bolt runs a listener in once it has acked (a private function
# nested in `AsyncioListenerRunner.run`: Bolt offers no public way to wait for a listener).
BOLT_LISTENER_TASK = "run_ack_function_asynchronously"


@contextlib.contextmanager
def _tasks_created() -> Iterator[list[asyncio.Task[Any]]]:
    """Every task the running loop creates inside the block, finished ones included
    (`asyncio.all_tasks()` forgets a listener that was quicker than Bolt's ack polling).
    """
    loop = asyncio.get_running_loop()
    previous = loop.get_task_factory()
    created: list[asyncio.Task[Any]] = []

    def record(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Future[Any]:
        task = (previous(loop, coro, **kwargs) if previous is not None
                else asyncio.Task(coro, loop=loop, **kwargs))
        assert isinstance(task, asyncio.Task)
        created.append(task)
        return task

    loop.set_task_factory(record)
    try:
        yield created
    finally:
        loop.set_task_factory(previous)


async def _listeners_done(response: BoltResponse, created: list[asyncio.Task[Any]]) -> None:
    # With process_before_response=False Bolt acks first and runs the listener (and on
    # failure the error handler) in a task of its own; wait for those tasks, and only
    # those: the stand-ins' connection tasks live on.
    started = [task for task in created if task.get_coro().__name__ == BOLT_LISTENER_TASK]  # type: ignore[union-attr]
    if response.status == 200 and not started:
        # Every request a scenario sends that Bolt acks with 200 went to a listener. No task
        # of that name means Bolt renamed its runner's coroutine: fail here, or every
        # scenario would read the stand-ins before its listener had run and race it.
        raise AssertionError(
            f"Bolt acked with 200 but started no {BOLT_LISTENER_TASK!r} task (its tasks: "
            f"{sorted({task.get_coro().__qualname__ for task in created})}); "  # type: ignore[union-attr]
            "tests/helpers/bolt.py must learn how this Bolt version runs a listener"
        )
    if started:
        await asyncio.wait_for(asyncio.gather(*started), LISTENER_TIMEOUT)


@contextlib.asynccontextmanager
async def bolt_scenario(
    tmp_path: Path, *, services: Callable[[Services], Services] = lambda s: s,
    policy: AccessPolicy = UNBOUNDED,
) -> AsyncIterator[BoltScenario]:
    """The real app on stand-ins; `services` may swap a service for the scenario. `policy`
    bounds it as the access settings would, its user groups read from the stand-in."""
    async with (
        SlackStandIn(bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET) as slack,
        SampleCdeApi(sample_runs(), token=CDE_TOKEN) as cde,
    ):
        settings = Settings(
            _env_file=None, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
            slack_api_url=slack.base_url, cde_api_url=cde.url, cde_api_token=CDE_TOKEN,
        )
        store = store_from_url(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
        await store.open()
        client = web_client(settings)
        cde_client = CdeClient(cde.url, SecretStr(CDE_TOKEN), retry=NO_WAIT_RETRY)
        # No spacing between posts: a scenario posts a few messages, never a burst.
        poster = SlackPoster(client, min_interval=0.0)
        built = services(Services(Lookups(cde_client, no_links, sites=policy),
                                  Subscriptions(store, poster, policy), OnCall(store, poster),
                                  metrics=Metrics(), access=Access(policy, SlackGroups(client))))
        app = build_app(settings, client)
        register(app, built)
        try:
            yield BoltScenario(app, slack, cde, store, built)
        finally:
            await cde_client.aclose()
            await client.aclose()
            await store.close()


def with_lookups(lookups: Lookups) -> Callable[[Services], Services]:
    """A `services` argument of `bolt_scenario` that swaps the lookups."""
    return lambda services: replace(services, lookups=lookups)


def all_text(message: Any) -> str:
    return json.dumps(message, ensure_ascii=False)


def button(message: dict[str, Any], action_prefix: str) -> dict[str, Any]:
    """The first button or menu whose action id starts with `action_prefix`."""
    for block in message.get("blocks", []):
        for element in block.get("elements", []):
            if str(element.get("action_id", "")).startswith(action_prefix):
                return dict(element)
    raise AssertionError(f"no {action_prefix} button in {all_text(message)}")
