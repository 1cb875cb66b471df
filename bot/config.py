"""Settings from the environment (or a `.env` file), validated once at start-up.

Nothing is read at import time: `load_settings()` is called by the CLI, so tests and
tools can build `Settings` directly.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    AnyHttpUrl,
    Field,
    ModelWrapValidatorHandler,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_CDE_API_URL = "https://cde.productsup.com"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///cde-bot.db"
# DATABASE_URL's database -> the async driver the store runs on (and is tested with). Read
# here without SQLAlchemy, which `cde-bot check` and `--help` need not import.
ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}

# Placeholders a CDE web UI link template may use; each is filled from the run.
LINK_PLACEHOLDERS = ("run_id", "site_id", "connector_id", "process_id", "project_id", "account_id")

# Slack's ids: a kind letter, then upper-case letters and digits (e.g. U0123ABCD).
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_USER_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
# Site ids are stored as signed 64-bit integers.
MAX_SITE_ID = 2**63 - 1


class ConfigError(Exception):
    """Settings are missing or invalid; the message lists every problem and its fix."""


class Settings(BaseSettings):
    """Every setting of the bot. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    # Each description says what a setting expects; `describe_errors` and `cde-bot check`
    # show it next to a problem with that setting.
    slack_bot_token: SecretStr = Field(
        description="the Bot User OAuth Token (xoxb-...) from the app's OAuth & Permissions page")
    slack_signing_secret: SecretStr | None = Field(
        default=None,
        description="the Signing Secret from the app's Basic Information page "
        "(needed in HTTP mode, i.e. when SLACK_APP_TOKEN is not set)")
    slack_app_token: SecretStr | None = Field(
        default=None,
        description="an app-level token (xapp-...) with connections:write, from Basic "
        "Information > App-Level Tokens, with Socket Mode turned on; leave it unset to use HTTP mode")
    slack_api_url: AnyHttpUrl = Field(
        default=AnyHttpUrl(DEFAULT_SLACK_API_URL), description="a URL such as https://slack.com/api/")
    cde_api_url: AnyHttpUrl = Field(
        default=AnyHttpUrl(DEFAULT_CDE_API_URL),
        description="the CDE API's base URL, e.g. https://cde.productsup.com")
    cde_api_token: SecretStr = Field(
        description="a CDE API token; it is sent as 'Authorization: Bearer <token>'")
    cde_web_url_template: str | None = Field(
        default=None,
        description="a URL with placeholders such as https://cde.example.com/runs/{run_id} "
        "(allowed: " + ", ".join(LINK_PLACEHOLDERS) + ")")
    port: int = Field(default=3000, ge=1, le=65535, description="a TCP port number from 1 to 65535")
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="an SQLAlchemy URL: sqlite+aiosqlite:///cde-bot.db, or "
                    "postgresql+asyncpg://user:password@host/database for several replicas")
    cde_poll_interval: float = Field(
        default=60, ge=1, description="a number of seconds, at least 1 (default 60)")
    cde_poll_stale_seconds: float | None = Field(
        default=None, ge=1,
        description="seconds without a successful poll before /readyz reports not ready "
        "(default: 3 × CDE_POLL_INTERVAL, at least 120)")
    cde_lookback_hours: float = Field(
        default=24, gt=0, le=24 * 14,
        description="how many hours back a poll looks for failed runs (default 24, at most 336)")
    cde_poll_max_requests: int = Field(
        default=10, ge=3, le=1000,
        description="CDE API requests one poll may spend reading failed runs (default 10, 3 to "
                    "1000): the newest every poll, the rest of the look-back window over several "
                    "polls")
    cde_scan_max_pages: int = Field(
        default=200, ge=1, le=10000,
        description="pages of 100 runs one sweep of the look-back window may read (default 200, 1 "
                    "to 10000); a sweep that needs more is cut short, and the admins are told")
    cde_recovery_max_requests: int = Field(
        default=20, ge=1, le=1000,
        description="CDE API requests one poll may spend looking for recoveries of open "
                    "incidents (default 20, 1 to 1000)")
    cde_outage_alert_minutes: float = Field(
        default=10, gt=0,
        description="minutes of CDE API outage before the admin channel is told (default 10)")
    notice_digest_threshold: int = Field(
        default=5, ge=1, le=100,
        description="how many new failures in one channel in one poll before a digest "
        "is posted instead (1 to 100, default 5)")
    slack_admin_channel: str | None = Field(
        default=None, description="a channel id such as C0123456789 for operational alerts")
    cde_admins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="comma-separated Slack user ids (U... or W...) and user-group ids (S...) "
        "who alone may subscribe, unsubscribe, mute and unmute (default: unset, anyone may)")
    cde_allowed_channels: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="comma-separated Slack channel ids (C..., G... or D...) the bot answers in "
        "(default: unset, every channel)")
    cde_allowed_sites: Annotated[tuple[int, ...], NoDecode] = Field(
        default=(),
        description="comma-separated CDE site ids (positive whole numbers) the bot shows and "
        "follows (default: unset, every site the CDE token can see)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="one of DEBUG, INFO, WARNING, ERROR")
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text (one readable line per event, the default) or json (one JSON object per line)")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_log_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("cde_admins", mode="before")
    @classmethod
    def _admin_ids(cls, value: object) -> object:
        return _checked_ids(value, lambda word: bool(_USER_ID.match(word) or _USER_GROUP_ID.match(word)),
                            "a Slack user id (U... or W...) or user-group id (S...)")

    @field_validator("cde_allowed_channels", mode="before")
    @classmethod
    def _channel_ids(cls, value: object) -> object:
        return _checked_ids(value, lambda word: bool(_CHANNEL_ID.match(word)),
                            "a Slack channel id (C..., G... or D...)")

    @field_validator("cde_allowed_sites", mode="before")
    @classmethod
    def _site_ids(cls, value: object) -> object:
        words = _id_words(value)
        if words is None:
            return value
        checked = _checked_ids(
            words, lambda word: word.isascii() and word.isdigit() and 0 < int(word) <= MAX_SITE_ID,
            f"a site id (a whole number from 1 to {MAX_SITE_ID})")
        assert isinstance(checked, tuple)
        return tuple(int(word) for word in checked)

    @field_validator(
        "slack_signing_secret", "slack_app_token", "cde_web_url_template", "slack_admin_channel",
        "cde_poll_stale_seconds", mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `FOO=` in a .env file means "not set", not "set to nothing".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator(
        "slack_bot_token", "slack_app_token", "slack_signing_secret", "cde_api_token", mode="before"
    )
    @classmethod
    def _clean_secret(cls, value: object) -> object:
        # Secrets mounted from files often end in a newline; inner control characters or
        # non-ASCII would only fail later, inside an HTTP header, so refuse them here.
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not isinstance(value, str):
            return value
        value = value.strip()
        if any(ord(char) < 33 or ord(char) > 126 for char in value):
            raise ValueError("contains spaces, control or non-ASCII characters; paste the value again")
        return value

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token_shape(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token starting with 'xoxb-'")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token starting with 'xapp-'")
        return value

    @field_validator("cde_api_token")
    @classmethod
    def _cde_token_present(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_driver(cls, value: str) -> str:
        # A plain sqlite:// or postgresql:// URL gets its async driver; a synchronous
        # driver (psycopg2, pysqlite...) would only fail when the store opens. Messages
        # never repeat the URL: it may hold a password.
        scheme, separator, rest = value.strip().partition("://")
        if not separator:
            raise ValueError("is not a URL: it must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        backend, _, driver = scheme.lower().partition("+")
        wanted = ASYNC_DRIVERS.get(backend)
        if wanted is None:
            return value  # another database: SQLAlchemy says what it makes of it
        if driver in ("", wanted.partition("+")[2]):
            return f"{wanted}://{rest}"
        raise ValueError(f"uses the driver {driver!r}, which cde-bot does not run on: write "
                         f"{wanted}:// instead of {scheme}://, the rest of the URL unchanged")

    @field_validator("cde_web_url_template")
    @classmethod
    def _template_placeholders(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            value.format(**{name: "x" for name in LINK_PLACEHOLDERS})
        except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
            raise ValueError(f"has an unknown or malformed placeholder ({exc})") from None
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// or http://")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _transport_is_complete(cls, data: Any, handler: ModelWrapValidatorHandler[Settings]) -> Settings:
        # A wrap validator, so that this problem is reported together with every field
        # problem instead of only after those are fixed.
        incomplete = isinstance(data, dict) and not any(
            _is_set(data.get(name)) for name in ("slack_app_token", "slack_signing_secret")
        )
        problem = InitErrorDetails(
            type="value_error",
            loc=("slack_signing_secret",),
            input=None,
            ctx={"error": ValueError(
                "is required in HTTP mode; set it, or set SLACK_APP_TOKEN to use Socket Mode"
            )},
        )
        try:
            settings = handler(data)
        except ValidationError as exc:
            if not incomplete:
                raise
            details = [InitErrorDetails(type=e["type"], loc=e["loc"], input=e["input"],
                                        ctx=e.get("ctx", {})) for e in exc.errors()]
            raise ValidationError.from_exception_data(cls.__name__, [*details, problem]) from None
        if incomplete:
            raise ValidationError.from_exception_data(cls.__name__, [problem])
        return settings

    @property
    def socket_mode(self) -> bool:
        """Socket Mode when an app-level token is configured, HTTP otherwise."""
        return self.slack_app_token is not None

    def secrets(self) -> list[str]:
        """Every value that must never be shown: each `SecretStr` setting, and the password
        of any URL setting (DATABASE_URL, or credentials written into an API URL). Derived
        from the fields, so that a secret setting added later is kept secret too.
        """
        secrets: list[str] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                secrets.append(value.get_secret_value())
            elif isinstance(value, str | AnyHttpUrl):
                secrets += _url_password(str(value))
        return list(dict.fromkeys(s for s in secrets if s))


def _id_words(value: object) -> list[str] | None:
    """The ids of a comma-separated setting (a list given in code is taken as it is); None
    for a value of another type, left to pydantic to refuse."""
    if isinstance(value, str):
        return [word.strip() for word in value.split(",") if word.strip()]
    if isinstance(value, list | tuple | set | frozenset):
        return [str(word).strip() for word in value]
    return None


def _checked_ids(value: object, fits: Any, expected: str) -> object:
    """The ids of `value` in order, once each; a `ValueError` naming every id that does not
    fit `expected` (shown as typed: ids are not secret)."""
    words = _id_words(value)
    if words is None:
        return value
    bad = [word for word in words if not fits(word)]
    if bad:
        listed = ", ".join(repr(word[:40]) for word in bad[:5]) + (" and more" if len(bad) > 5 else "")
        raise ValueError(f"{listed} {'is' if len(bad) == 1 else 'are'} not valid: each must be {expected}")
    return tuple(dict.fromkeys(words))


def _url_password(url: str) -> list[str]:
    """The password in `url`, if any. A password with reserved characters is %-escaped in
    the URL; drivers and their messages see it unescaped, so both forms are secret.
    """
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    return [password, unquote(password)] if password else []


def _is_set(value: object) -> bool:
    """As `_empty_is_unset` sees it: white space alone is not a value."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return bool(value.strip()) if isinstance(value, str) else bool(value)


def description(name: str) -> str | None:
    """What the setting `name` (a field name, e.g. `slack_bot_token`) expects; None for an
    unknown name."""
    field = Settings.model_fields.get(name)
    return field.description if field is not None else None


def settings_table() -> list[tuple[str, str]]:
    """Every setting as (variable, what it expects and its default or `required`), in the
    order `Settings` declares them: what `cde-bot serve --help` lists."""
    rows = []
    for name, field in Settings.model_fields.items():
        description = field.description or ""
        if field.is_required():
            rows.append((name.upper(), f"required: {description}"))
        elif field.default is None or "default" in description:
            rows.append((name.upper(), description))
        else:
            rows.append((name.upper(), f"{description} (default {field.default})"))
    return rows


def fix_by_setting(name: str) -> str:
    """`set NAME to <what it expects>`, the fix for a value that was refused."""
    return f"set {name.upper()} to {description(name)}"


def describe_errors(exc: ValidationError) -> str:
    """One line per problem: the variable, what is wrong, how to fix it. Never the value."""
    lines = ["cde-bot cannot start; fix these settings (environment variables or .env):"]
    for error in exc.errors(include_input=False, include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is not set"
        if field:
            hint = description(field)
            line = f"  - {field.upper()}: {message}"
            if hint:
                line += f" (expected {hint})"
        else:
            line = f"  - {message}"
        lines.append(line)
    return "\n".join(lines)


class _GivenSettings(Settings):
    """Settings from the values given only: no environment, no .env file."""

    # Built when first used (by the demo): pydantic would otherwise build a second copy of
    # the settings' validator at import, some 5 ms of every start of `serve`.
    model_config = SettingsConfigDict(defer_build=True)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def load_settings(*, environment: bool = True, **values: Any) -> Settings:
    """Read settings from the environment and `.env` (`values` win over them), or with
    `environment=False` from `values` alone; `ConfigError` lists every problem at once.
    `values` are fields by name, of any type pydantic can validate into the field's.
    """
    try:
        if not environment:
            return _GivenSettings(**values)
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc)) from None
