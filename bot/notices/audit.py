"""The audit trail's entries: one per change to a subscription, a mute or an
acknowledgement, built here (pure) and stored by the store in the change's transaction;
`logged` writes each as a structured log event too.
"""

from __future__ import annotations

import logging
from datetime import datetime

from bot.notices.models import (
    ACKNOWLEDGED,
    MUTED,
    SUBSCRIBED,
    TAKEN_BACK,
    UNMUTED,
    UNSUBSCRIBED,
    AuditEntry,
    Incident,
    Subscription,
)

log = logging.getLogger(__name__)


def subscribed(subscription: Subscription, user: str) -> AuditEntry:
    return AuditEntry(subscription.created_at, user, subscription.channel_id, SUBSCRIBED,
                      f"subscription {subscription.id}",
                      {"filter": subscription.notice_filter.as_dict()})


def taken_back(subscription: Subscription, user: str, at: datetime, reason: str) -> AuditEntry:
    """A subscription removed at once because its confirmation could not be posted."""
    return AuditEntry(at, user, subscription.channel_id, TAKEN_BACK, f"subscription {subscription.id}",
                      {"reason": reason})


def unsubscribed(channel: str, user: str, at: datetime, subscription_id: int) -> AuditEntry:
    return AuditEntry(at, user, channel, UNSUBSCRIBED, f"subscription {subscription_id}")


def unsubscribed_all(channel: str, user: str, at: datetime, count: int) -> AuditEntry:
    return AuditEntry(at, user, channel, UNSUBSCRIBED, "all subscriptions", {"count": count})


def muted(incident: Incident, user: str, at: datetime, hours: int, until: datetime) -> AuditEntry:
    """A mute set (hours > 0) or lifted (0) on the connector and site of `incident`."""
    details: dict[str, object] = {"site_id": incident.site_id, "connector_id": incident.connector_id}
    if hours:
        details |= {"hours": hours, "until": until.isoformat()}
    return AuditEntry(at, user, incident.channel_id, MUTED if hours else UNMUTED,
                      _connector_on_site(incident), details)


def acknowledged(incident: Incident, user: str, at: datetime) -> AuditEntry:
    return AuditEntry(at, user, incident.channel_id, ACKNOWLEDGED, f"incident {incident.id}",
                      {"site_id": incident.site_id, "connector_id": incident.connector_id,
                       "message_ts": incident.message_ts})


def logged(entry: AuditEntry) -> None:
    """The change as a structured log event (fields of their own in the JSON log format)."""
    log.info("audit: %s %s by %s in %s", entry.action, entry.target, entry.user_id, entry.channel_id,
             extra={"event": "audit", "user": entry.user_id, "channel": entry.channel_id,
                    "action": entry.action, "target": entry.target})


def _connector_on_site(incident: Incident) -> str:
    return f"connector {incident.connector_id or '?'} on site {incident.site_id or '?'}"
