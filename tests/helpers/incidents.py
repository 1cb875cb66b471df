"""An incident as the store keeps it, for the store's tests."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.notices.models import Incident

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def make_incident(channel_id: str = "C1", message_ts: str = "1.1", **changes: object) -> Incident:
    values: dict[str, object] = {
        "id": 0, "channel_id": channel_id, "site_id": 7, "connector_id": "conn", "message_ts": message_ts,
        "run": {"id": "run-1", "status": "failed", "nested": {"n": [1, 2]}},
        "failures": 1, "muted_failures": 0, "first_failed_at": NOW, "last_failed_at": NOW,
    }
    values.update(changes)
    return Incident(**values)  # type: ignore[arg-type]
