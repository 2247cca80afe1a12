"""``[cluster]``: defaults, the renewal rule, and a cluster only on a PostgreSQL store; each refusal one line."""

from __future__ import annotations

import pytest

from posmon.cluster.settings import ClusterSettings
from posmon.config import ConfigError

URL = "postgresql://posmon@/posmon"


def test_defaults_are_a_ten_second_lease_renewed_every_three_and_the_host_pid_name():
    s = ClusterSettings.from_config({"enabled": True}, URL)
    assert (s.enabled, s.lease_seconds, s.lease_renew_seconds) == (True, 10.0, 3.0)
    assert s.instance.endswith(f"-{__import__('os').getpid()}")
    assert s.margin == 2.5  # sending stops 2.5 s before the lease could expire


def test_no_section_is_no_cluster():
    assert not ClusterSettings.from_config({}, "var/posmon.sqlite").enabled


@pytest.mark.parametrize(
    ("raw", "store", "words"),
    [
        ({"lease_seconds": 4, "lease_renew_seconds": 2}, URL, "cluster.lease_renew_seconds: invalid value 2.0"),
        ({"lease_renew_seconds": 0}, URL, "less than half of cluster.lease_seconds"),
        ({"lease_seconds": 0.5}, URL, "cluster.lease_seconds: invalid value 0.5"),
        ({"lease_seconds": "10"}, URL, "expected a number of seconds"),
        ({"enabled": "yes"}, URL, "cluster.enabled: invalid value 'yes'"),
        ({"enabled": True}, "var/posmon.sqlite", "set it (or posmon run --store) to postgresql://"),
        ({"leases": 3}, URL, "cluster.leases: unknown key"),
        ({"instance": "  "}, URL, "cluster.instance: invalid value"),
    ],
)
def test_a_bad_cluster_setting_is_one_line_naming_the_key(raw, store, words):
    with pytest.raises(ConfigError) as err:
        ClusterSettings.from_config(raw, store)
    assert words in str(err.value) and "\n" not in str(err.value)
