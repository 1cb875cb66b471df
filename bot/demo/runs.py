"""Building runs as the CDE API sends them (hyphenated JSON), for the sample API and tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

SITES = {1001: "Site 1", 1002: "Site 2", 1003: "Feeds DE", 1004: "Feeds FR"}


def uuid7(moment: datetime, counter: int = 0) -> str:
    """A UUIDv7-shaped id for `moment`, like the API's time-ordered ids."""
    millis = int(moment.timestamp() * 1000) & ((1 << 48) - 1)
    rand_a = counter & 0xFFF
    rand_b = uuid.uuid4().int & ((1 << 62) - 1)
    value = (millis << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


def make_run(
    *,
    state: str | None = "finished",
    site_id: int = 1001,
    site_name: str | None = None,
    connector_id: str = "019e16f3-bf9c-7485-b60b-ff3407921934",
    connector_version: str = "1.0.1",
    project_id: int = 650,
    project_name: str = "Project 2",
    account_id: int = 748,
    account_name: str = "Account 2",
    started_at: datetime | None = None,
    took: timedelta = timedelta(minutes=5),
    created_at: datetime | None = None,
    exit_code: int | None = None,
    run_id: str | None = None,
    process_id: str | None = None,
) -> dict[str, Any]:
    """One run in the API's JSON shape; unfinished states have no `finished-at`."""
    started = started_at or datetime.now(UTC) - took
    finished = started + took if state in ("finished", "failed") else None
    created = created_at or started
    if exit_code is None and state in ("finished", "failed"):
        exit_code = 0 if state == "finished" else 1
    return {
        "id": run_id or uuid7(created),
        "connector-id": connector_id,
        "connector-version": connector_version,
        "state": state,
        "process-id": process_id or uuid7(created, 1),
        "site-id": site_id,
        "site-name": site_name if site_name is not None else SITES.get(site_id, f"Site {site_id}"),
        "project-id": project_id,
        "project-name": project_name,
        "account-id": account_id,
        "account-name": account_name,
        "exit-code": exit_code,
        "container-api-docker-image": None,
        "container-api-version-constraint": None,
        "cli-command": None,
        "registered-secrets": None,
        "authentications": None,
        "connector-setup-config": None,
        "started-at": _iso(started),
        "finished-at": _iso(finished) if finished else None,
        "created-at": _iso(created),
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")
