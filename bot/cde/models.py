"""Frozen models of the CDE API's payloads, validated once at the client boundary.

Field names follow Python; aliases are the API's hyphenated names. Unknown fields are
ignored and every field but `id` may be null, as the API reference shows. `state` is a
plain string: only `finished` and `failed` are documented, and any other value is kept.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

FAILED = "failed"
FINISHED = "finished"
KNOWN_STATES = (FAILED, FINISHED)


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


class RunPage(_ApiModel):
    """One page of `GET /runs`."""

    runs: tuple[Run, ...] = Field(alias="data")
    info: PageInfo = Field(default_factory=PageInfo, alias="metadata")

    @field_validator("info", mode="before")
    @classmethod
    def _missing_metadata(cls, value: object) -> object:
        return PageInfo() if value is None else value

    def is_last(self, seen: int, page_size: int) -> bool:
        """Whether paging can stop after this page, `seen` runs having been read so far:
        by `metadata.total` when the API gives it, else when a page comes back short.
        """
        if not self.runs:
            return True
        if self.info.total is not None:
            return seen >= self.info.total
        return len(self.runs) < page_size

    @property
    def total(self) -> int:
        """The number of matching runs, falling back to what this page shows."""
        if self.info.total is not None:
            return self.info.total
        return self.info.offset + len(self.runs)


class RunAnswer(_ApiModel):
    """The body of `GET /runs/{id}`."""

    run: Run = Field(alias="data")


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
