"""``[accounts.<name>]``: each account's venue and credentials merged over the venue's table, its secrets from
``POSMON_ACCOUNTS_<NAME>_<KEY>``; a bad section is one line naming it; without sections, one account per venue."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from posmon.cluster.accounts import accounts_of
from posmon.config import ConfigError, load_settings
from posmon.exchange.aster.settings import AsterSettings
from posmon.sim.aster import credentials as cred

KEY_A = "0x" + "1" * 64
KEY_B = "0x" + "2" * 64
USER = cred.DEFAULT_USER_ADDRESS

BASE = f"""[daemon]
venue = "aster"
[aster]
rest_url = "http://127.0.0.1:1"
ws_url = "ws://127.0.0.1:1"
auth = "v3"
user = "{USER}"
"""


def load(tmp_path: Path, text: str, env: dict[str, str]):
    path = tmp_path / "posmon.toml"
    path.write_text(text)
    settings = load_settings(path, env=env)
    return accounts_of(settings, env)


def test_without_account_sections_each_venue_is_one_account_named_by_it(tmp_path):
    [account] = load(tmp_path, BASE, {"POSMON_ASTER_SIGNER_PRIVATE_KEY": KEY_A})
    assert (account.name, account.venue) == ("aster", "aster")
    assert account.settings.daemon.venue_names == ("aster",)


def test_two_accounts_on_one_venue_each_with_its_own_key_and_url(tmp_path):
    text = (
        BASE + '[accounts.main]\nvenue = "aster"\n[accounts.hedge]\nvenue = "aster"\nrest_url = "http://127.0.0.1:2"\n'
    )
    env = {
        "POSMON_ASTER_SIGNER_PRIVATE_KEY": KEY_A,  # venue-wide: main uses it
        "POSMON_ACCOUNTS_HEDGE_SIGNER_PRIVATE_KEY": KEY_B,  # hedge's own wins
    }
    main, hedge = load(tmp_path, text, env)
    assert [main.name, hedge.name] == ["main", "hedge"]
    a = AsterSettings.from_config(main.settings.aster, main.env)
    b = AsterSettings.from_config(hedge.settings.aster, hedge.env)
    assert a.signer_private_key.endswith("1" * 64) and b.signer_private_key.endswith("2" * 64)
    assert (a.rest_url, b.rest_url) == ("http://127.0.0.1:1", "http://127.0.0.1:2")
    assert a.user == b.user == USER  # shared keys written once, in [aster]
    assert main.settings.daemon.venue == hedge.settings.daemon.venue == "aster"


def test_an_account_s_own_value_is_not_overridden_by_the_venue_wide_variable(tmp_path):
    text = BASE + f'[accounts.main]\nvenue = "aster"\nsigner_private_key = "{KEY_B}"\n'
    [main] = load(tmp_path, text, {"POSMON_ASTER_SIGNER_PRIVATE_KEY": KEY_A})
    assert AsterSettings.from_config(main.settings.aster, main.env).signer_private_key.endswith("2" * 64)


@pytest.mark.parametrize(
    ("section", "env", "expected"),
    [
        ('[accounts.main]\nvenue = "binance"\n', {}, "accounts.main.venue: invalid value 'binance'"),
        ('[accounts.Main]\nvenue = "aster"\n', {}, "accounts.Main: invalid account name 'Main'"),
        ('[accounts.main]\nvenue = "aster"\n', {}, "accounts.main.signer_private_key: missing"),
        (
            '[accounts.main]\nvenue = "aster"\n',
            {"POSMON_ACCOUNTS_MAIN_SIGNER_PRIVATE_KEY": "0x12"},
            "POSMON_ACCOUNTS_MAIN_SIGNER_PRIVATE_KEY: invalid value '***'",
        ),
        (
            '[accounts.main]\nvenue = "aster"\n',
            {"POSMON_ASTER_SIGNER_PRIVATE_KEY": KEY_A, "POSMON_ACCOUNTS_OTHER_API_KEY": "x"},
            "POSMON_ACCOUNTS_OTHER_API_KEY: no [accounts.<name>] section for it",
        ),
    ],
)
def test_a_bad_section_is_one_line_naming_it(tmp_path, section, env, expected):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, BASE + section, env)
    text = str(info.value)
    assert expected in text and "\n" not in text and "0x12" not in text


async def test_without_a_cluster_one_daemon_runs_a_named_account_and_keys_its_rows_by_the_name(tmp_path, nursery):
    """``posmon run`` with one ``[accounts.main]`` on Aster's simulator: the account's tranche carries ``main``."""
    import trio

    from chaos.venues import AsterVenue
    from posmon.cli.run import run_main
    from posmon.domain.orders import Side
    from posmon.store.store import Store

    venue = AsterVenue(("BTCUSDT",))
    rest_url, ws_url = await venue.serve(nursery)
    store = tmp_path / "posmon.sqlite"
    text = f"""[daemon]
store = "{store}"
hedge_mode = true
[api]
enabled = false
[aster]
auth = "v3"
user = "{USER}"
symbols = ["BTCUSDT"]
[accounts.main]
venue = "aster"
rest_url = "{rest_url}"
ws_url = "{ws_url}"
"""
    env = {"POSMON_ACCOUNTS_MAIN_SIGNER_PRIVATE_KEY": cred.DEFAULT_SIGNER_PRIVATE_KEY}
    path = tmp_path / "posmon.toml"
    path.write_text(text)
    settings = load_settings(path, env={})
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        async with trio.open_nursery() as inner:
            inner.start_soon(run_main, settings)
            with trio.fail_after(30):
                while not venue.connected():  # noqa: ASYNC110 - the simulator, in this process
                    await trio.sleep(0.02)
            venue.entry("BTCUSDT", Side.LONG, D("100"))
            with trio.fail_after(30):
                while len(venue.resting()) < 2:  # noqa: ASYNC110 - TP and SL rest
                    await trio.sleep(0.02)
            inner.cancel_scope.cancel()
    opened = Store.open(store)
    try:
        assert {t.venue for t in opened.open_tranches()} == {"main"}
        assert all(o.client_id.startswith("pm-") for o in venue.resting())
    finally:
        opened.close()
