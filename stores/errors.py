"""Store errors: one type, each message naming the store, the field or the file at fault."""


class StoreError(ValueError):
    """Bad input to the store or a store folder that cannot be used as asked."""
