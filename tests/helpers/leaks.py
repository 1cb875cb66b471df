"""Looking for a secret in what left the bot, in every form it may have taken on the way.

`leaks(text, secrets)` names each secret found in `text`: as it is, URL-escaped,
JSON-escaped, as mrkdwn/HTML entities or in base64, whole or cut. A cut counts when
`MIN_ANYWHERE` (12) characters of the secret or more are left together (in any of those
forms), the length from which the bot's redactor treats a secret as recognisable anywhere
(see bot/redact.py).
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from aiohttp import web

from bot.demo.api import Fault, SampleCdeApi
from bot.redact import MIN_ANYWHERE

# A token full of the characters each form escapes (`/`, `+`, `&`, `<`, `>`, `"`): the forms
# differ from the plain text only where the secret holds such characters.
ODD_CDE_TOKEN = 'cde/t0ken+with&odd<"chars">-0123456789'


def forms(secret: str) -> set[str]:
    """The secret as it may be written on its way out."""
    json_text = json.dumps(secret)[1:-1]
    shown = {
        secret, quote(secret, safe=""), quote(secret), quote_plus(secret), json_text,
        json_text.replace("/", "\\/"), json.dumps(secret, ensure_ascii=True)[1:-1],
        html.escape(secret, quote=False), html.escape(secret),
        secret.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
    }
    # Entities inside JSON, and JSON escapes inside a URL: two steps on the way.
    shown |= {json.dumps(form)[1:-1] for form in list(shown)}
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + secret.encode()).decode()
        core = encoded[-(-offset * 4 // 3): (offset + len(secret.encode())) // 3 * 4]
        shown |= {core, core.replace("+", "-").replace("/", "_")}
    return shown


def _pieces(secret: str) -> set[str]:
    """Every run of `MIN_ANYWHERE` characters of `secret`: what is left of it however cut."""
    if len(secret) <= MIN_ANYWHERE:
        return {secret}
    return {secret[i: i + MIN_ANYWHERE] for i in range(len(secret) - MIN_ANYWHERE + 1)}


def leaks(text: str, secrets: Iterable[str]) -> list[str]:
    """The secrets some recognisable part of which (`MIN_ANYWHERE` characters of it, in any
    of its forms) is in `text`."""
    return [secret for secret in secrets
            if any(form in text for piece in _pieces(secret) for form in forms(piece))]


def everything(value: Any) -> str:
    """A JSON-like value as one text to search: its strings as they are, and as JSON."""
    return json.dumps(value, ensure_ascii=False) + "\n" + json.dumps(value, ensure_ascii=True)


def assert_kept(text: str, secrets: Iterable[str], where: str) -> None:
    """No part of any secret is in `text` (`where` it came from, for the failure)."""
    found = leaks(text, secrets)
    assert not found, f"{len(found)} secret(s) leaked in {where}: {text[:2000]}"


class EchoingCdeApi(SampleCdeApi):
    """The sample CDE API, answering the requests `echoes(request)` picks with `echo` (a
    scripted answer quoting the token, say) and every other request as usual: the bot's
    own polls and checks are served, whatever their timing.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.echo: Fault | None = None
        self.echoed = 0  # requests answered with `echo`
        self.echo_all = False  # every request, not only the lookups below

    def echoes(self, request: web.Request) -> bool:
        """`/runs?site-id=1...` and `/runs/<ECHO_RUN>`: the lookups the tests make."""
        return (self.echo_all or request.query.get("site-id") == "1"
                or request.path == f"/runs/{ECHO_RUN}")

    async def _gate(self, request: web.Request) -> web.Response | None:
        if self.echo is None or not self.echoes(request):
            return await super()._gate(request)
        self.echoed += 1
        if isinstance(self.echo.body, dict):
            return web.json_response(self.echo.body, status=self.echo.status)
        return web.Response(text=self.echo.body, status=self.echo.status)


ECHO_RUN = "019e16f3-0000-7000-8000-00000000e0c0"


def echoing_faults(token: str) -> dict[str, Fault]:
    """The CDE API's answers that quote the bot's token, by name: in an error's message (a
    400 and a 500) and in a 400's field error.
    """
    return {
        "400 message": Fault(400, {"message": f"token {token} may not list these runs"}),
        "400 field error": Fault(400, {"message": "Bad request.",
                                       "errors": {"site-id": f"token {token} may not see site 1"}}),
        "500 message": Fault(500, {"message": f"Internal error while checking token {token}"}),
        "401 message": Fault(401, {"message": f"token {token} has expired"}),
    }
