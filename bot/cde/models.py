"""Frozen models of the CDE API's payloads, validated once at the client boundary.

Field names follow Python; aliases are the API's hyphenated names. Unknown fields are
ignored and every field but `id` may be null, as the API reference shows. `state` is a
plain string: only `finished` and `failed` are documented, and any other value is kept.

A listing is read run by run (`read_run`): a field that does not fit its type (a list for
a name, "ERR" for an exit code, a site id beyond 64 bits, a date that is not one) is left
empty and named in `Run.problems`, so that one odd run is shown as far as it can be and
never hides the others. Only a run without a usable `id` cannot be read at all. A time
without an offset is read as UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

FAILED = "failed"
FINISHED = "finished"
KNOWN_STATES = (FAILED, FINISHED)

# Ids are stored as signed 64-bit integers; anything larger is refused where it comes in.
MAX_ID = 2**63 - 1
# A run id longer than this is not an id (UUIDs have 36 characters).
MAX_RUN_ID_LENGTH = 200
_TEXT_FIELDS = ("connector-id", "connector-version", "state", "process-id", "site-name",
                "project-name", "account-name", "container-api-docker-image",
                "container-api-version-constraint")
_ID_FIELDS = ("site-id", "project-id", "account-id")


class _ApiModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class Run(_ApiModel):
    """One execution of a connector."""

    id: str
    connector_id: str | None = Field(None, alias="connector-id")
    connector_version: str | None = Field(None, alias="connector-version")
    state: str | None = None
    process_id: str | None = Field(None, alias="process-id")
    site_id: int | None = Field(None, alias="site-id")
    site_name: str | None = Field(None, alias="site-name")
    project_id: int | None = Field(None, alias="project-id")
    project_name: str | None = Field(None, alias="project-name")
    account_id: int | None = Field(None, alias="account-id")
    account_name: str | None = Field(None, alias="account-name")
    exit_code: int | None = Field(None, alias="exit-code")
    container_api_docker_image: str | None = Field(None, alias="container-api-docker-image")
    container_api_version_constraint: str | None = Field(
        None, alias="container-api-version-constraint"
    )
    cli_command: Any = Field(None, alias="cli-command")
    registered_secrets: Any = Field(None, alias="registered-secrets")
    authentications: Any = None
    connector_setup_config: Any = Field(None, alias="connector-setup-config")
    started_at: datetime | None = Field(None, alias="started-at")
    finished_at: datetime | None = Field(None, alias="finished-at")
    created_at: datetime | None = Field(None, alias="created-at")
    # What could not be read, one "field: why" each (see `read_run`); empty for most runs.
    problems: tuple[str, ...] = ()

    @field_validator("id", mode="before")
    @classmethod
    def _usable_id(cls, value: object) -> object:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("a run id must be a non-empty string")
        if len(value) > MAX_RUN_ID_LENGTH or any(c.isspace() or ord(c) < 32 for c in value):
            raise ValueError("not a run id")
        return value

    @field_validator("connector_id", "process_id", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # An empty id names nothing: the same as none (incidents are keyed on it).
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator(*(name.replace("-", "_") for name in _TEXT_FIELDS), mode="before")
    @classmethod
    def _number_as_text(cls, value: object) -> object:
        # `site-name: 12345` or `connector-version: 2.0`: shown as the API wrote it.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator(*(name.replace("-", "_") for name in _ID_FIELDS), "exit_code", mode="before")
    @classmethod
    def _whole_number(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("a true/false value, not a number")
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{value!r} is not a whole number")
        return value

    @field_validator(*(name.replace("-", "_") for name in _ID_FIELDS), mode="before")
    @classmethod
    def _64_bits_as_sent(cls, value: object) -> object:
        if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > MAX_ID:
            raise ValueError(f"{value:.0f} is beyond 64 bits (at most {MAX_ID})")
        return value

    @field_validator(*(name.replace("-", "_") for name in _ID_FIELDS), mode="after")
    @classmethod
    def _64_bits(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= MAX_ID:
            raise ValueError(f"{value} is outside 0 to {MAX_ID} (64 bits)")
        return value

    @field_validator("started_at", "finished_at", "created_at", mode="after")
    @classmethod
    def _utc_unless_said(cls, value: datetime | None) -> datetime | None:
        # The contract gives every time an offset; one without is taken for UTC rather
        # than compared with aware times (which would raise).
        if value is not None and value.utcoffset() is None:
            return value.replace(tzinfo=UTC)
        return value

    @property
    def failed(self) -> bool:
        return self.state == FAILED

    @property
    def duration(self) -> timedelta | None:
        """How long the run took, when both ends are known."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


class PageInfo(_ApiModel):
    """The `metadata` of a list answer. `next` is kept only as a hint: its format is unknown."""

    offset: int = Field(0, alias="from")
    limit: int | None = None
    count: int | None = None
    total: int | None = None
    next: Any = None


@dataclass(frozen=True)
class Unreadable:
    """An item of a listing that is not a run this bot can read: its place on the page,
    its `id` as sent (shortened, for the log), and why.
    """

    position: int
    id: str
    reason: str


def read_run(raw: object) -> Run | Unreadable:
    """One run of a listing, read as far as it fits: the fields that do not are left empty
    and named in `problems`. Unreadable only when its `id` is (or it is not an object).
    """
    if not isinstance(raw, dict):
        return Unreadable(-1, "?", f"not an object but {type(raw).__name__}")
    # Numbers for text are shown as text (see `Run._number_as_text`), and named.
    as_text = tuple(f"{alias}: a number, not text (sent {_shorten(raw[alias])}); shown as text"
                    for alias in _TEXT_FIELDS
                    if isinstance(raw.get(alias), int | float) and not isinstance(raw.get(alias), bool))
    try:
        run = Run.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_input=True, include_url=False)
    else:
        return run.model_copy(update={"problems": as_text}) if as_text else run
    bad = {str(error["loc"][0]): error for error in errors if error["loc"]}
    if "id" in bad:
        return Unreadable(-1, _shorten(raw.get("id")), f"id: {bad['id']['msg']}")
    problems = as_text + tuple(f"{name}: {_why(error)}" for name, error in bad.items())
    kept = {key: value for key, value in raw.items() if key not in bad}
    try:
        return Run.model_validate({**kept, "problems": problems})
    except ValidationError as exc:  # a field that only fails with the others gone: give up
        return Unreadable(-1, _shorten(raw.get("id")), f"unreadable: {exc.errors()[0]['msg']}")


def _why(error: Any) -> str:
    sent = _shorten(error.get("input"))
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{message} (sent {sent})"


def _shorten(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RunPage(_ApiModel):
    """One page of `GET /runs`. `runs` holds what could be read; `unreadable` the rest,
    so `size` (both together) is how far the page moves the listing's offset.
    """

    runs: tuple[Run, ...] = Field(alias="data")
    unreadable: tuple[Unreadable, ...] = ()
    info: PageInfo = Field(default_factory=PageInfo, alias="metadata")
    # The `limit` this page was asked with (set by the client): with `info`, it tells
    # whether the page ends its listing (see `bot.cde.paging.PageSizing.is_last`).
    asked: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _run_by_run(cls, value: object) -> object:
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            return value  # the field validation says what is wrong
        runs: list[Run] = []
        unreadable: list[Unreadable] = []
        for position, item in enumerate(value["data"]):
            if isinstance(item, Run):
                runs.append(item)
                continue
            read = read_run(item)
            if isinstance(read, Run):
                runs.append(read)
            else:
                unreadable.append(Unreadable(position, read.id, read.reason))
        return {**value, "data": runs, "unreadable": unreadable}

    @field_validator("info", mode="before")
    @classmethod
    def _missing_metadata(cls, value: object) -> object:
        return PageInfo() if value is None else value

    @property
    def size(self) -> int:
        """Items on this page, readable or not."""
        return len(self.runs) + len(self.unreadable)

    @property
    def total(self) -> int:
        """The number of matching runs, falling back to what this page shows."""
        if self.info.total is not None:
            return self.info.total
        return self.info.offset + self.size


class RunAnswer(_ApiModel):
    """The body of `GET /runs/{id}`: the run read as far as it fits (see `read_run`)."""

    run: Run = Field(alias="data")

    @field_validator("run", mode="before")
    @classmethod
    def _as_far_as_it_fits(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        read = read_run(value)
        if isinstance(read, Unreadable):
            raise ValueError(read.reason)
        return read


class RunFilter(_ApiModel):
    """Filters of `GET /runs`, as the API spells them."""

    id: str | None = None
    connector_id: str | None = Field(None, alias="connector-id")
    connector_version: str | None = Field(None, alias="connector-version")
    site_id: int | None = Field(None, alias="site-id")
    state: str | None = None
    process_id: str | None = Field(None, alias="process-id")

    def to_params(self) -> dict[str, str]:
        """Query parameters for the API: only the filters that are set."""
        return {
            key: str(value)
            for key, value in self.model_dump(by_alias=True, exclude_none=True).items()
        }

    @property
    def is_empty(self) -> bool:
        return not self.to_params()
