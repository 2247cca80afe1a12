"""The cluster's tables, a store migration like any other (``posmon.store.schema.MIGRATIONS``).

``leases``: one row per account (its name: the venue's today) - who owns it, the fencing token that grows on every
takeover, and when it expires, in seconds since the epoch on the database server's clock (one clock for every
instance, so no two hosts' clocks are compared). ``instances``: every instance that registered, and when it was last
heard of. SQLite stores get the tables too (one schema), but only a PostgreSQL store is shared by instances.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from posmon.store.schema import Migration


def leases_and_instances(m: Migration) -> None:
    m.table("leases").create(
        {
            "account": str,
            "owner": str,
            "token": int,
            "expires_at": float,
            "acquired_at": float,
            "renewed_at": float,
        },
        pk="account",
        not_null={"owner", "token", "expires_at"},
    )
    m.table("instances").create(
        {"id": str, "host": str, "pid": int, "started_at": float, "last_seen": float},
        pk="id",
    )
