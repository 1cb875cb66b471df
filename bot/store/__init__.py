"""Persistence: the interface in `base`, an SQLAlchemy implementation in `sql`."""

from bot.store.base import SchemaTooNewError, Store, StoreError

__all__ = ["SchemaTooNewError", "Store", "StoreError"]
