"""Venue accounts by name (issue 17): what a cluster's leases are per, and what an instance runs for each.

``[accounts.<name>]`` sections each name a ``venue`` ("aster" or "lighter") and that account's credentials: its
keys are merged over the venue's table (``[aster]``/``[lighter]``), so what every account shares (URLs, symbols,
timeouts) is written once. Secrets come from the environment as for the venue's table, with the account's own
prefix: ``POSMON_ACCOUNTS_<NAME>_<KEY>`` (``POSMON_ACCOUNTS_MAIN_SIGNER_PRIVATE_KEY``). What wins, lowest first:
``[aster]``, ``POSMON_ASTER_<KEY>``, ``[accounts.<name>]``, ``POSMON_ACCOUNTS_<NAME>_<KEY>`` - so a venue-wide
variable never overrides what one account set for itself.

Without ``[accounts.*]`` every venue of ``[daemon] venue``/``venues`` is one account named by the venue, as before.

The account's name is the key its tranches, orders and events carry in the store (their ``venue`` column) and the
label of its metrics: two accounts on one venue never share a row, and a single-account store (keyed "aster")
reads the same as it always did. Client order ids need nothing more: they are ``<prefix>-<tranche id>-...`` and
tranche ids are allocated store-wide, so two accounts sharing one store never make the same id.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from posmon.config import ConfigError, Settings
from posmon.venues import VenueOpener

ENV_PREFIX = "POSMON_ACCOUNTS_"
VENUE_KINDS = ("aster", "lighter")
_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")


@dataclass(frozen=True, slots=True)
class Account:
    """One venue account: its name (the lease's and the store's key), the venue it trades, and the settings and
    environment that open it (``[daemon] venue`` set to its venue, the venue's table merged with its own)."""

    name: str
    venue: str
    settings: Settings
    env: Mapping[str, str]


def accounts_of(settings: Settings, env: Mapping[str, str] | None = None) -> list[Account]:
    """Every account configured, validated (a bad section is one ``ConfigError`` line naming it)."""
    env = os.environ if env is None else env
    raw = settings.accounts
    if not raw:
        return [Account(v, v, _for_venue(settings, v), env) for v in settings.daemon.venue_names]
    accounts = []
    for name, section in raw.items():
        accounts.append(_account(settings, name, section, env))
    for name in env:
        if name.startswith(ENV_PREFIX) and not any(name.startswith(_env_prefix(a.name)) for a in accounts):
            raise ConfigError(f"{name}: no [accounts.<name>] section for it; configured accounts: {', '.join(raw)}")
    return accounts


def _env_prefix(account: str) -> str:
    return f"{ENV_PREFIX}{account.upper()}_"


def _for_venue(settings: Settings, venue: str) -> Settings:
    daemon = dataclasses.replace(settings.daemon, venue=venue, venues=())  # type: ignore[arg-type]
    return dataclasses.replace(settings, daemon=daemon)


def _account(settings: Settings, name: str, section: Any, env: Mapping[str, str]) -> Account:
    where = f"accounts.{name}"
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(
            f"{where}: invalid account name {name!r}; expected lower-case letters, digits and _ (up to 32), "
            "starting with a letter"
        )
    if not isinstance(section, Mapping):
        raise ConfigError(f'{where}: expected a table with venue = "aster" or "lighter" and its credentials')
    venue = section.get("venue")
    if venue not in VENUE_KINDS:
        raise ConfigError(f"{where}.venue: invalid value {venue!r}; expected one of 'aster', 'lighter'")
    own = {k: v for k, v in section.items() if k != "venue"}
    table = {**getattr(settings, venue), **own}
    venue_prefix = f"POSMON_{venue.upper()}_"
    mine = _env_prefix(name)
    merged = {
        k: v for k, v in env.items() if not k.startswith(tuple(f"POSMON_{kind.upper()}_" for kind in VENUE_KINDS))
    }
    for key, value in env.items():  # the venue-wide variables, for the keys this account does not set itself
        if key.startswith(venue_prefix) and key[len(venue_prefix) :].lower() not in own:
            merged[key] = value
    for key, value in env.items():  # the account's own variables win over everything
        if key.startswith(mine):
            merged[venue_prefix + key[len(mine) :]] = value
    base = _for_venue(settings, venue)
    if venue == "aster":
        account_settings = dataclasses.replace(base, aster=table)
    else:
        account_settings = dataclasses.replace(base, lighter=table)
    try:
        _check(venue, table, merged)
    except ConfigError as exc:
        text = str(exc).replace(venue_prefix, mine).replace(f"{venue}.", f"{where}.")
        raise ConfigError(f"{where}: {text}" if not text.startswith(where) else text) from None
    return Account(name, venue, account_settings, merged)


def _check(venue: str, table: Mapping[str, Any], env: Mapping[str, str]) -> None:
    if venue == "aster":
        from posmon.exchange.aster.settings import AsterSettings

        AsterSettings.from_config(table, env)
    else:
        from posmon.exchange.lighter.settings import LighterSettings

        LighterSettings.from_config(table, env)


@dataclass(frozen=True, slots=True)
class AccountOpener(VenueOpener):
    """``VenueOpener`` of one named account: opens its venue (``kind``) and names the opened venue after the
    account, so that ``run_daemon`` keys its actors, store rows and metrics by the account."""

    kind: str = ""

    @property
    def venue_kind(self) -> str:
        return self.kind


def opener_of(account: Account) -> AccountOpener:
    from posmon.startup import venue_is_embedded

    embedded = venue_is_embedded(account.settings, account.env, name=account.venue)
    return AccountOpener(account.settings, account.name, embedded, account.env, kind=account.venue)
