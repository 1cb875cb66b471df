"""Requests: junk and forgeries at `/slack/events`. Each must be refused (401 unsigned or
forged, 400 malformed) before anything reads it: no 5xx, no traceback, nothing logged above
DEBUG for it, and no body (with Slack's verification token and the `response_url`) in the
log."""

from __future__ import annotations

import logging
import time

from bench.hostile.cases import case
from bench.hostile.census import Observation
from bench.hostile.world import OPS, World
from tests.standins.slack import encode_slash_command, slash_command_payload
from tests.standins.slack.payloads import VERIFICATION_TOKEN

JUNK: list[tuple[str, bytes, str]] = [
    ("{garbage", b"{garbage", "application/json"),
    ("payload=[1]", b"payload=%5B1%5D", "application/x-www-form-urlencoded"),
    ("invalid UTF-8", b"\xff\xfe\xfd payload=\xc3", "application/x-www-form-urlencoded"),
    ("a JSON list", b"[1, 2, 3]", "application/json"),
    ("payload=null", b"payload=null", "application/x-www-form-urlencoded"),
    ("payload={", b"payload=%7B", "application/x-www-form-urlencoded"),
    ("an empty body", b"", "application/x-www-form-urlencoded"),
    ("a JSON string", b'"hello"', "application/json"),
]


def _command(world: World, text: str = "subscribe site:1001") -> tuple[bytes, str]:
    url = world.slack.new_response_url(channel_id=OPS, user_id="U0001")
    return encode_slash_command(slash_command_payload(text, response_url=url)), url


async def refused(world: World, seen: Observation, what: str, body: bytes, *,
                  allowed: tuple[int, ...] = (400, 401), forged: bool = True, loudest: int = logging.DEBUG,
                  **post: object) -> None:
    """Send one request; count it, and check how it was refused."""
    seen.tried()
    started = time.monotonic()
    answer = await world.post_event(body, **post)  # type: ignore[arg-type]
    if answer.status >= 500:
        seen.crashes.append(f"{what}: answered {answer.status}")
    elif answer.status not in allowed:
        if forged and answer.status == 200:
            seen.forged_accepted += 1
        seen.failures.append(f"{what} answered {answer.status}, not {' or '.join(map(str, allowed))}")
    assert world.log is not None
    loud = [r for r in world.log.since(started) if r.level > loudest]
    seen.check(not loud, f"{what}: nothing above {logging.getLevelName(loudest)} logged "
                         f"(got: {loud[0].text[-140:] if loud else ''})")
    seen.check("Traceback" not in answer.body, f"{what}: no traceback in the answer")


@case("requests", "unsigned-junk")
async def unsigned_junk(seen: Observation, quick: bool) -> None:
    """Junk bodies without a signature: 401/400 each."""
    async with World(seen) as world:
        for what, body, kind in JUNK:
            await refused(world, seen, f"unsigned {what}", body, secret=None, content_type=kind)
        world.finish()


@case("requests", "wrongly-signed-junk")
async def wrongly_signed_junk(seen: Observation, quick: bool) -> None:
    """Junk bodies signed with the wrong secret: 401 each."""
    async with World(seen) as world:
        for what, body, kind in JUNK:
            await refused(world, seen, f"wrongly signed {what}", body, secret="not-the-secret",
                          content_type=kind)
        world.finish()


@case("requests", "signed-junk")
async def signed_junk(seen: Observation, quick: bool) -> None:
    """Junk bodies rightly signed (a bug at Slack's end, or a leaked secret): 400 each, and
    no more than the INFO line any request from Slack gets."""
    async with World(seen) as world:
        for what, body, kind in JUNK:
            await refused(world, seen, f"signed {what}", body, allowed=(400, 404), forged=False,
                          loudest=logging.INFO, content_type=kind)
        world.finish()


@case("requests", "non-numeric-timestamp")
async def non_numeric_timestamp(seen: Observation, quick: bool) -> None:
    """A command whose X-Slack-Request-Timestamp is not a number: 401/400."""
    async with World(seen) as world:
        for stamp in ("abc", "", "1e9", "-1", "17000000000000000000000"):
            body, _ = _command(world)
            await refused(world, seen, f"timestamp {stamp!r}", body, timestamp=stamp)
        seen.check(len(world.slack.messages(OPS)) == 0, "no subscription was made by a forged command")
        world.finish()


@case("requests", "stale-timestamp")
async def stale_timestamp(seen: Observation, quick: bool) -> None:
    """A rightly signed command from 10 minutes ago (a replay), and one from the future: 401."""
    async with World(seen) as world:
        for offset in (-600, -301, 3600):
            body, _ = _command(world)
            await refused(world, seen, f"timestamp {offset:+d} s", body, allowed=(401,),
                          timestamp=int(time.time()) + offset)
        seen.check(len(world.slack.messages(OPS)) == 0, "no subscription was made by a replayed command")
        world.finish()


@case("requests", "bad-signature")
async def bad_signature(seen: Observation, quick: bool) -> None:
    """A command signed with another secret, or with a malformed signature: 401."""
    async with World(seen) as world:
        body, _ = _command(world)
        await refused(world, seen, "another secret", body, allowed=(401,), secret="another-secret")
        for signature in ("v0=", "v0=zz", "v1=" + "0" * 64, "", "v0=" + "0" * 64):
            body, _ = _command(world)
            seen.tried()
            started = time.monotonic()
            answer = await world.request("POST", "/slack/events", body, {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": signature})
            if answer.status == 200:
                seen.forged_accepted += 1
            seen.check(answer.status == 401,
                       f"signature {signature[:8]!r} answered 401 (got {answer.status})")
            assert world.log is not None
            seen.check(not [r for r in world.log.since(started) if r.level > logging.DEBUG],
                       f"signature {signature[:8]!r}: nothing above DEBUG logged")
        seen.check(len(world.slack.messages(OPS)) == 0, "no subscription was made by a forged command")
        world.finish()


@case("requests", "bodies-kept-out-of-the-log")
async def bodies_out_of_the_log(seen: Observation, quick: bool) -> None:
    """Rejected and accepted commands: Slack's verification token and the response_url are
    never in the log, at any level."""
    async with World(seen) as world:
        urls = []
        for secret in ("another-secret", None):
            body, url = _command(world, "runs site:1001")
            urls.append(url)
            seen.tried()
            await world.post_event(body, secret=secret)
        body, url = _command(world, "runs site:1001")
        urls.append(url)
        seen.tried()
        await world.post_event(body)
        await world.wait(lambda: bool(world.slack.responses(url)))
        assert world.log is not None
        log = world.log.text()
        if VERIFICATION_TOKEN in log:
            seen.leaks.append("the log (Slack's verification token)")
        if any(u in log for u in urls):
            seen.leaks.append("the log (a response_url)")
        world.finish()
