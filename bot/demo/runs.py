"""Building runs as the CDE API sends them (hyphenated JSON), for the sample API and tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, Unpack

SITES = {1001: "Site 1", 1002: "Site 2", 1003: "Feeds DE", 1004: "Feeds FR"}


def uuid7(moment: datetime, counter: int = 0) -> str:
    """A UUIDv7-shaped id for `moment`, like the API's time-ordered ids."""
    millis = int(moment.timestamp() * 1000) & ((1 << 48) - 1)
    rand_a = counter & 0xFFF
    rand_b = uuid.uuid4().int & ((1 << 62) - 1)
    value = (millis << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


class RunFields(TypedDict, total=False):
    """What a test or the sample API may set on a run; the rest comes from `RUN_DEFAULTS`
    or from the others (times from `started_at` and `took`, ids from `created_at`)."""

    state: str | None
    site_id: int
    site_name: str | None
    connector_id: str
    connector_version: str
    project_id: int
    project_name: str
    account_id: int
    account_name: str
    started_at: datetime | None
    took: timedelta
    created_at: datetime | None
    exit_code: int | None
    run_id: str | None
    process_id: str | None


RUN_DEFAULTS: RunFields = {
    "state": "finished",
    "site_id": 1001,
    "site_name": None,  # the name SITES gives the site
    "connector_id": "019e16f3-bf9c-7485-b60b-ff3407921934",
    "connector_version": "1.0.1",
    "project_id": 650,
    "project_name": "Project 2",
    "account_id": 748,
    "account_name": "Account 2",
    "started_at": None,  # `took` ago
    "took": timedelta(minutes=5),
    "created_at": None,  # when it started
    "exit_code": None,  # 0 when finished, 1 when failed
    "run_id": None,  # a fresh UUIDv7 of its creation
    "process_id": None,
}


def make_run(**fields: Unpack[RunFields]) -> dict[str, Any]:
    """One run in the API's JSON shape; unfinished states have no `finished-at`."""
    run: RunFields = {**RUN_DEFAULTS, **fields}
    state, took, site_id, exit_code = run["state"], run["took"], run["site_id"], run["exit_code"]
    started = run["started_at"] or datetime.now(UTC) - took
    finished = started + took if state in ("finished", "failed") else None
    created = run["created_at"] or started
    if exit_code is None and state in ("finished", "failed"):
        exit_code = 0 if state == "finished" else 1
    site_name = run["site_name"]
    return {
        "id": run["run_id"] or uuid7(created),
        "connector-id": run["connector_id"],
        "connector-version": run["connector_version"],
        "state": state,
        "process-id": run["process_id"] or uuid7(created, 1),
        "site-id": site_id,
        "site-name": site_name if site_name is not None else SITES.get(site_id, f"Site {site_id}"),
        "project-id": run["project_id"],
        "project-name": run["project_name"],
        "account-id": run["account_id"],
        "account-name": run["account_name"],
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
