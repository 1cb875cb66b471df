"""Secrets: the CDE API echoing the bot's own token (in an error message, a field error, a
run's field). The token must never reach Slack, a response_url answer, an HTTP answer or
the log, whatever its source."""

from __future__ import annotations

from typing import Any

from bench.hostile.cases import case, failure
from bench.hostile.census import Observation
from bench.hostile.world import ADMIN, OPS, World
from bot.demo.api import Fault
from bot.ops.check import format_results, run_checks
from tests.helpers.bot_process import CDE_TOKEN


async def read_every_endpoint(world: World) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        await world.request("GET", path)


async def polls_failing_with(seen: Observation, fault: Fault, what: str) -> None:
    """Every poll answered with `fault` (quoting the token) until the admin channel is told
    of the outage; then the HTTP endpoints are read. The token is nowhere."""
    async with World(seen, cde_outage_alert_minutes=0.001) as world:
        seen.check(await world.subscribe("site:1001"), "the subscription was confirmed")
        await world.poll()
        world.cde.fail_next(*[fault] * 30)
        seen.tried()
        told = await world.poll_until(lambda: bool(world.slack.messages(ADMIN)), polls=6, timeout=1)
        seen.check(told, f"the admin channel was told of the outage ({what})")
        await read_every_endpoint(world)
        world.cde.reset()
        await world.poll(2)  # the recovery is told too
        world.finish()


@case("secrets", "token-in-poll-error-message")
async def token_in_poll_message(seen: Observation, quick: bool) -> None:
    """Polls answered 403 `{"message": "token <token> may not list runs"}`."""
    await polls_failing_with(seen, Fault(403, {"message": f"token {CDE_TOKEN} may not list runs"}),
                             "a 403 quoting the token")


@case("secrets", "token-in-poll-field-error")
async def token_in_poll_field(seen: Observation, quick: bool) -> None:
    """Polls answered 400 with a field error quoting the token."""
    await polls_failing_with(seen, Fault(400, {"message": "Bad request.", "errors": {
        "state": f"not allowed for Bearer {CDE_TOKEN}"}}), "a 400 quoting the token")


@case("secrets", "token-in-poll-html-page")
async def token_in_poll_html(seen: Observation, quick: bool) -> None:
    """Polls answered 401 with an HTML page quoting the Authorization header."""
    await polls_failing_with(seen, Fault(401, f"<html><body>Authorization: Bearer {CDE_TOKEN}</body></html>"),
                             "an HTML 401 quoting the token")


async def lookup_answered_with(seen: Observation, text: str, fault: Fault) -> None:
    """`/cde text`, the API answering with `fault` (quoting the token): the user is told
    what went wrong, without the token."""
    async with World(seen) as world:
        world.cde.fail_next(*[fault] * 5)
        seen.tried()
        answer, url = await world.command(text)
        seen.check(answer.status == 200, f"`/cde {text}` was acked (got {answer.status})")
        seen.check(await world.wait(lambda: bool(world.slack.responses(url))) or bool(answer.body.strip()),
                   f"`/cde {text}` got an answer")
        await read_every_endpoint(world)
        world.finish()


@case("secrets", "token-in-lookup-field-error")
async def token_in_lookup_field(seen: Observation, quick: bool) -> None:
    """`/cde runs site:1001` answered 400 with a field error quoting the token."""
    await lookup_answered_with(seen, "runs site:1001", Fault(400, {"message": "Bad request.", "errors": {
        "site-id": f"{CDE_TOKEN} may not read this site"}}))


@case("secrets", "token-in-lookup-error-message")
async def token_in_lookup_message(seen: Observation, quick: bool) -> None:
    """`/cde run <id>` answered 403 with a message quoting the token."""
    await lookup_answered_with(seen, "run 019e16f3-bfb8-7ed8-8d26-b7d40818d146",
                               Fault(403, {"message": f"Forbidden for token {CDE_TOKEN}."}))


@case("secrets", "token-in-lookup-401-headers")
async def token_in_lookup_401(seen: Observation, quick: bool) -> None:
    """`/cde runs` answered 401 with a text page echoing the request's headers."""
    await lookup_answered_with(seen, "runs state:failed", Fault(
        401, f"GET /runs\nAuthorization: Bearer {CDE_TOKEN}\nAccept: application/json"))


@case("secrets", "token-in-a-run-field")
async def token_in_run_field(seen: Observation, quick: bool) -> None:
    """A failed run whose site name holds the token: told (without it), and looked up."""
    async with World(seen) as world:
        seen.check(await world.subscribe("site:1001"), "the subscription was confirmed")
        await world.poll()
        run: dict[str, Any] = failure(site_name=f"Feeds {CDE_TOKEN}")
        world.cde.add_run(run)
        seen.tried()
        seen.expected.append(run["id"])
        await world.poll_until(lambda: bool(world.told([run["id"]])), polls=3)
        world.count_told([run["id"]], OPS)
        seen.tried()
        _, url = await world.command(f"run {run['id']}")
        seen.check(await world.wait(lambda: bool(world.slack.responses(url))), "the lookup was answered")
        world.finish()


@case("secrets", "token-in-check-output")
async def token_in_check(seen: Observation, quick: bool) -> None:
    """`cde-bot check` while the CDE API answers 401 quoting the token: the report lacks it."""
    async with World(seen) as world:
        assert world.bot is not None
        world.cde.fail_next(*[Fault(401, {"message": f"Unknown token {CDE_TOKEN}."})] * 5)
        seen.tried()
        report = format_results(await run_checks(world.bot.bot.settings))
        seen.check("401" in report or "refused" in report.lower(), "check reported the refusal")
        world.printed["check's report"] = report
        world.finish()
