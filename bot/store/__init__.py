"""Persistence: the interface in `base`, an SQLAlchemy implementation in `sql`."""

from bot.store.base import SCHEMA_VERSION, SchemaTooNewError, Store, StoreError

__all__ = ["SCHEMA_VERSION", "SchemaTooNewError", "Store", "StoreError"]
