"""The floor the bot is measured against: a bare Bolt `AsyncApp` in HTTP mode that acks
`/cde` and answers it through the `response_url` with a constant. Everything the bot does
beyond this (parsing, the CDE API call, rendering, its store, its metrics) is its own cost.

Run by `bench.load`: python -m bench.floor_app (PORT, SLACK_SIGNING_SECRET,
SLACK_BOT_TOKEN and SLACK_API_URL from the environment).
"""

from __future__ import annotations

import os

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient


def main() -> None:
    client = AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"],
                            base_url=os.environ["SLACK_API_URL"])
    app = AsyncApp(signing_secret=os.environ["SLACK_SIGNING_SECRET"], client=client)

    @app.command("/cde")
    async def answer(ack: AsyncAck, respond: AsyncRespond) -> None:
        await ack()
        await respond(text="A constant answer.")

    app.start(port=int(os.environ["PORT"]), path="/slack/events", host="127.0.0.1")


if __name__ == "__main__":
    main()
