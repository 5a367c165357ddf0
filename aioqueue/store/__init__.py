"""Storage: the contract every backend keeps (``base``) and the choice of backend (``factory``).

Only the backends (``store/sqlite``, ``store/postgres``) speak SQL or import a driver.
"""

from .base import ChangePage, JobStore, Node, OutboxRow, StoreListener
from .factory import is_postgres_url, store_for

__all__ = ["ChangePage", "JobStore", "Node", "OutboxRow", "StoreListener", "is_postgres_url", "store_for"]
