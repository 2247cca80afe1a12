"""``[api]`` settings: defaults, environment overrides, and the rule that off-loopback binds need a token."""

import pytest

from posmon.api import ApiSettings
from posmon.config import ConfigError

TOKEN = "0123456789abcdef-token"


def test_defaults_listen_on_loopback_port_8787_without_a_token():
    s = ApiSettings.from_config({}, {})
    assert (s.enabled, s.host, s.port, s.token, s.health_timeout_seconds) == (True, "127.0.0.1", 8787, "", 5.0)
    assert s.loopback and s.client_url == "http://127.0.0.1:8787"


def test_environment_overrides_the_file():
    s = ApiSettings.from_config(
        {"port": 9000, "enabled": False},
        {"POSMON_API_PORT": "9100", "POSMON_API_ENABLED": "yes", "POSMON_API_TOKEN": TOKEN, "POSMON_RISK_TP_PCT": "2"},
    )
    assert (s.port, s.enabled, s.token) == (9100, True, TOKEN)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "posmon.internal"])
def test_listening_beyond_loopback_without_a_token_stops_start_up(host):
    with pytest.raises(ConfigError) as err:
        ApiSettings.from_config({"host": host}, {})
    assert "api.host" in str(err.value) and repr(host) in str(err.value) and "token" in str(err.value)


def test_the_error_names_the_environment_variable_that_set_the_host():
    with pytest.raises(ConfigError, match="POSMON_API_HOST"):
        ApiSettings.from_config({}, {"POSMON_API_HOST": "0.0.0.0"})


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.0.1", "::1", "localhost"])
def test_loopback_hosts_need_no_token(host):
    assert ApiSettings.from_config({"host": host}, {}).loopback


def test_off_loopback_with_a_token_is_accepted_and_reached_through_loopback():
    s = ApiSettings.from_config({"host": "0.0.0.0", "token": TOKEN, "port": 8800}, {})
    assert not s.loopback and s.client_url == "http://127.0.0.1:8800"
    assert ApiSettings(host="::", port=1).client_url == "http://[::1]:1"


def test_a_disabled_api_needs_no_token_wherever_it_would_listen():
    assert not ApiSettings.from_config({"host": "0.0.0.0", "enabled": False}, {}).enabled


@pytest.mark.parametrize(
    ("table", "env", "named", "allowed"),
    [
        ({"port": 70000}, {}, "api.port", "0 to 65535"),
        ({"port": "8787"}, {}, "api.port", "0 to 65535"),
        ({}, {"POSMON_API_PORT": "eighty"}, "POSMON_API_PORT", "0 to 65535"),
        ({"enabled": "yes"}, {}, "api.enabled", "boolean"),
        ({}, {"POSMON_API_ENABLED": "maybe"}, "POSMON_API_ENABLED", "true/false"),
        ({"host": ""}, {}, "api.host", "IP address"),
        ({"health_timeout_seconds": 0}, {}, "api.health_timeout_seconds", "> 0"),
        ({"bind": "x"}, {}, "api.bind", "'host'"),
        ({}, {"POSMON_API_PROT": "1"}, "POSMON_API_PROT", "POSMON_API_PORT"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(table, env, named, allowed):
    with pytest.raises(ConfigError) as err:
        ApiSettings.from_config(table, env)
    assert named in str(err.value) and allowed in str(err.value)


def test_the_token_is_never_echoed():
    short = "tooshort"
    with pytest.raises(ConfigError) as err:
        ApiSettings.from_config({"token": short}, {})
    assert "api.token" in str(err.value) and short not in str(err.value) and "16" in str(err.value)
    with pytest.raises(ConfigError) as err:
        ApiSettings.from_config({"tokn": TOKEN}, {})
    assert TOKEN not in str(err.value)
    with pytest.raises(ConfigError) as err:
        ApiSettings.from_config({}, {"POSMON_API_TOKN": TOKEN})
    assert TOKEN not in str(err.value)
    assert TOKEN not in repr(ApiSettings(token=TOKEN))


def test_allowed_hosts_names_the_host_headers_a_remote_client_may_use():
    s = ApiSettings.from_config(
        {"allowed_hosts": ["posmon.internal"]}, {"POSMON_API_ALLOWED_HOSTS": "posmon.internal, ops.example"}
    )
    assert s.allowed_hosts == ("posmon.internal", "ops.example")
    assert ApiSettings.from_config({}, {}).allowed_hosts == ()


@pytest.mark.parametrize("bad", [["evil.example:8787"], ["a b"], ["user@host"], [""], ["x/y"]])
def test_allowed_hosts_refuses_ports_paths_and_blanks(bad):
    with pytest.raises(ConfigError) as err:
        ApiSettings.from_config({"allowed_hosts": bad}, {})
    assert "api.allowed_hosts" in str(err.value)
