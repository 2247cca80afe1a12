"""Store errors."""


class StoreError(Exception):
    """The store cannot be opened or is inconsistent; the daemon must not trade on it."""
