"""Secrets kept in: one `Redactor`, built once from the settings, that every exit of the
bot passes its text through (Slack Web API calls, `response_url` answers, the HTTP answers,
the log, `cde-bot check`, the console).

Whatever the source of a string (an error the CDE API echoed, a run's field, an exception),
a configured secret in it is replaced by `[redacted]`, in the forms it takes on the way:

- as it is, and trimmed;
- escaped, character by character, as a URL (`%2F`, any case, `+` for a space), as JSON or
  repr() (`\\"`, `\\/`, `\\u0026`, `\\t`), or as mrkdwn and HTML (`&amp;`, `&lt;`, `&gt;`);
- in base64 (standard or URL-safe alphabet, at any offset: `Basic` credentials, a header
  echoed encoded), for secrets of `MIN_ANYWHERE` characters or more.

How long a secret must be, so that a short one never blanks ordinary words:

- shorter than `MIN_SECRET_LENGTH` (6): never redacted; no real token is that short;
- `MIN_SECRET_LENGTH` to `MIN_ANYWHERE - 1` (6 to 11): redacted only as a whole word (not
  inside a longer run of letters and digits), in its plain and URL-escaped forms;
- `MIN_ANYWHERE` (12) and longer: redacted wherever it appears, in every form above, and
  so is what a cut leaves of it: its first or its last `MIN_ANYWHERE` characters or more
  (a text clipped at a Block Kit limit, a log line's slice, a secret split over two blocks
  by its source). Fewer than that of a secret is not recognisable, and is left.

The renderer clips texts before the exits redact them (it is pure, and knows no secret), so
a secret cut by a clip reaches the exit as such a start: it is redacted there.

Slack's `response_url` is no configured secret, but whoever has it may post in the channel
for half an hour: `mask_hooks` (used by the log) keeps only the host of a Slack hooks URL, and
hides the value of any `response_url` field or parameter, and of any `token` one (Slack's
verification token, in each request body Slack sends, which Bolt dumps at DEBUG).

Everything is one compiled alternation, built once per set of secrets.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.config import Settings

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 6
MIN_ANYWHERE = 12
# Characters a URL carries as they are (RFC 3986 "unreserved"); any other may be %-escaped.
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ENTITIES = {"&": ("&amp;",), "<": ("&lt;",), ">": ("&gt;",), '"': ("&quot;",), "'": ("&#39;", "&#x27;")}
_WORD_EDGE_BEFORE = r"(?<![A-Za-z0-9])"
_WORD_EDGE_AFTER = r"(?![A-Za-z0-9])"

# Slack's hooks hosts (commercial and GovSlack): a response_url or an incoming webhook.
_HOOKS = re.compile(r"(https?:(?:\\?/){2}hooks\.slack(?:-gov)?\.com)((?:\\?/|%2[fF])[^\s\"'<>|,)\]}]*)")
# `response_url` or `token` (Slack's verification token, in every request body it sends) as a
# JSON or repr() key, a form field or a keyword: its value is hidden.
_RESPONSE_URL = re.compile(
    r"""((?<![A-Za-z0-9_])(?:response_url|token)\\?["']?\s*(?:[:=]|%3[aAdD])\s*\\?["']?)"""
    r"""(?!\[redacted\])([^\s"'\\,&}\])]+)""")  # a value redacted already stays as it is


def _hex_case(code: int) -> str:
    """`%2F` as a pattern that matches either case of its hex digits."""
    return "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in f"{code:02X}")


def _character(char: str) -> str:
    """A pattern for one character of a secret, as it is or escaped on its way out.

    Every form begins with a fixed character (a backslash, `%`, `&`, the character): an
    alternation of such is scanned fast, one beginning with a repeat ten times slower.
    """
    if char in _UNRESERVED:
        return re.escape(char)
    code = ord(char)
    # One backslash or more (`\\\\*`, written so as to begin with a fixed one) before the
    # character or its escape: JSON or repr() once (`\\"`), or escaped again, as a JSON text
    # inside a repr() (`\\\\"`, a log of a request body).
    backslashes = r"\\\\*"
    # The longer forms first: `&amp;` is not to be read as a plain `&` followed by `amp;`.
    forms = [re.escape(entity) for entity in _ENTITIES.get(char, ())]
    if code < 0x80:
        forms += [backslashes + "u00" + _hex_case(code), "%" + _hex_case(code)]
    escaped = repr(char)[1:-1]
    if escaped.startswith("\\"):  # `\t`, `\x07`
        forms.append(backslashes + re.escape(escaped.lstrip("\\")))
    forms += [backslashes + re.escape(char), re.escape(char)]
    if char == " ":
        forms.append(r"\+")
    unique = list(dict.fromkeys(forms))
    return unique[0] if len(unique) == 1 else "(?:" + "|".join(unique) + ")"


def _escaped(secret: str) -> str:
    return "".join(_character(char) for char in secret)


def _plain_or_url(secret: str) -> str:
    """A short secret as it is, or %-escaped: the forms a whole word takes."""
    return "".join(re.escape(c) if c in _UNRESERVED else f"(?:{re.escape(c)}|%{_hex_case(ord(c))})"
                   for c in secret)


def _base64_cores(secret: str) -> list[str]:
    """The part of any base64 text holding `secret` that does not depend on its neighbours:
    for each of the three offsets the secret may start at, the characters fully made of it.
    """
    raw = secret.encode()
    cores = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        # Characters carrying the padding bytes at the start, and the last (partial) group.
        start = -(-offset * 4 // 3)
        end = (offset + len(raw)) // 3 * 4
        core = encoded[start:end]
        if len(core) >= MIN_ANYWHERE:
            cores += [core, core.replace("+", "-").replace("/", "_")]
    return cores


def _cut_parts(secret: str) -> list[str]:
    """Patterns for what a cut leaves of `secret`, in any escaped form like the whole: its
    start or its end, `MIN_ANYWHERE` characters or more. Wherever they are, not only at an
    ellipsis: a text may be cut with none (a slice in a log line), and what follows a
    secret's start is of no account.
    """
    chars = [_character(c) for c in secret]
    if len(chars) <= MIN_ANYWHERE:
        return []
    # The start: its first MIN_ANYWHERE characters, then as many more as are there.
    more = ""
    for char in reversed(chars[MIN_ANYWHERE:-1]):
        more = f"(?:{char}{more})?"
    # The end, one alternative per place it may begin, longest first: alternatives that
    # begin with fixed characters are scanned fast, optional groups ten times slower.
    ends = ["".join(chars[i:]) for i in range(1, len(chars) - MIN_ANYWHERE + 1)]
    return ["".join(chars[:MIN_ANYWHERE]) + more, *ends]


def _pattern(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    forms = {form for secret in secrets for form in (secret, secret.strip())}
    alternatives: list[tuple[int, str]] = []
    for form in forms:
        if len(form) >= MIN_ANYWHERE:
            alternatives.append((len(form), _escaped(form)))
            alternatives += [(len(core), re.escape(core)) for core in _base64_cores(form)]
            # After every whole secret: a secret that is another's start is redacted whole.
            alternatives += [(MIN_ANYWHERE - 1, part) for part in _cut_parts(form)]
        elif len(form) >= MIN_SECRET_LENGTH:
            alternatives.append((len(form), _WORD_EDGE_BEFORE + _plain_or_url(form) + _WORD_EDGE_AFTER))
    if not alternatives:
        return None
    # Longest first, so that no secret is left half-redacted by another that is its prefix.
    alternatives.sort(key=lambda item: item[0], reverse=True)
    return re.compile("|".join(dict.fromkeys(pattern for _, pattern in alternatives)))


class Redactor:
    """Replaces every configured secret in text, or in every string of a JSON-like value."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = tuple(dict.fromkeys(s for s in secrets if s))
        self._pattern = _compiled(self.secrets)

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        """`text` with each secret, in any of its forms, replaced by `[redacted]`."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(REDACTED, text)

    def value(self, value: Any, *, keep: frozenset[str] = frozenset()) -> Any:
        """`value` with every string in it redacted, through dicts, lists and tuples (keys
        too); the top-level keys in `keep` are left as they are. Anything else is unchanged.
        """
        if self._pattern is None:
            return value
        if not isinstance(value, str) and not self._anywhere(value, keep):
            # The usual case, in one regex pass instead of one per string (a message holds
            # a hundred): nothing to redact, so nothing to copy.
            return value
        return self._each(value, keep)

    def _anywhere(self, value: Any, keep: frozenset[str]) -> bool:
        """Whether a secret is in any string of `value` that `value()` would redact. The
        strings are searched joined by NUL, which no secret's pattern matches, so that no
        match spans two of them.
        """
        assert self._pattern is not None
        found: list[str] = []
        _strings(value, keep, found)
        return self._pattern.search("\0".join(found)) is not None

    def _each(self, value: Any, keep: frozenset[str] = frozenset()) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self._each(k): v if k in keep else self._each(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._each(item) for item in value)
        return value


def _strings(value: Any, keep: frozenset[str], found: list[str]) -> None:
    """Every string in `value` (keys too) into `found`, but the values of the top-level
    keys in `keep`."""
    if isinstance(value, str):
        found.append(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _strings(key, frozenset(), found)
            if key not in keep:
                _strings(item, frozenset(), found)
    elif isinstance(value, list | tuple):
        for item in value:
            _strings(item, frozenset(), found)


@functools.lru_cache(maxsize=32)
def _compiled(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    return _pattern(secrets)


@functools.lru_cache(maxsize=32)
def redactor(secrets: tuple[str, ...]) -> Redactor:
    """The `Redactor` of `secrets`, built once."""
    return Redactor(secrets)


def mask_hooks(text: str) -> str:
    """`text` without the path of any Slack hooks URL, nor the value of a `response_url` or
    of a `token` field or parameter."""
    if "hooks.slack" not in text and "response_url" not in text and "token" not in text:
        return text
    text = _HOOKS.sub(lambda m: f"{m.group(1)}/{REDACTED}", text)
    return _RESPONSE_URL.sub(lambda m: m.group(1) + REDACTED, text)


def for_settings(settings: Settings) -> Redactor:
    """The `Redactor` of every secret the settings hold (`Settings.secrets`)."""
    return redactor(tuple(settings.secrets()))
