"""Store errors: one base type, and a subclass for each case a caller may want to act on.

Every message names the store, the field or the file at fault; the subclasses let callers
tell "locked" from "corrupt" without reading the text.
"""


class StoreError(ValueError):
    """Bad input to the store or a store folder that cannot be used as asked."""


class StoreLocked(StoreError):
    """Another process holds the store's writer lock."""


class ReadOnlyStore(StoreError):
    """A write was asked of a store opened read-only."""


class MemoryNotFound(StoreError):
    """Ids asked for are not in the store."""


class SchemaTooNew(StoreError):
    """The store was written by a newer lifelong."""


class StoreChanged(StoreError):
    """The store changed underneath a reader between two statements: retry."""


class StoreNotReady(StoreError):
    """A store a writer has not created yet, or is creating this moment: open it again later."""


class StoreCorrupt(StoreError):
    """A database or snapshot file that is damaged or not a lifelong store."""
