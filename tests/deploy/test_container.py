"""The Dockerfile, .dockerignore and compose.yaml, checked as a linter would (no container engine runs here), and
the container's health check run for real against the daemon's API.

The Dockerfile rules (hadolint-style, chosen for this image): the base image pinned to a version; a non-root
``USER`` before ``CMD``/``ENTRYPOINT``; a ``HEALTHCHECK`` whose script asks a readiness path the app serves; a
``VOLUME`` holding the store the container's configuration points at; no ``ADD`` (of URLs or at all); exec-form
``CMD``/``ENTRYPOINT``/``HEALTHCHECK``; ``pip install --no-cache-dir``; every ``COPY`` source present and inside
the build context that ``.dockerignore`` leaves; ``EXPOSE`` of the API port; ``STOPSIGNAL SIGTERM``; no secret in
``ENV``.
"""

from __future__ import annotations

import os
import re
import runpy
import shlex
import sys
from importlib import resources
from pathlib import Path, PurePosixPath

import pytest
import trio
import yaml

from posmon.api.app import create_app
from posmon.api.server import serve_api
from posmon.api.settings import ApiSettings
from posmon.config import ConfigError, load_settings
from posmon.metrics import render
from posmon.readiness import Readiness
from posmon.startup import venue_is_embedded
from tests.deploy.files import (
    ROOT,
    Instruction,
    MissingVariable,
    dockerignored,
    env_of,
    interpolate,
    parse_dockerfile,
)
from tests.harness import make_settings, running

DOCKERFILE = parse_dockerfile((ROOT / "Dockerfile").read_text())
IGNORE = (ROOT / ".dockerignore").read_text()
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICE = COMPOSE["services"]["posmon"]
TOKEN = "t" * 32


def instructions(keyword: str) -> list[Instruction]:
    return [i for i in DOCKERFILE if i.keyword == keyword]


def copies() -> list[tuple[list[str], str]]:
    """``(sources, destination)`` of every COPY."""
    out = []
    for i in instructions("COPY"):
        words = [w for w in shlex.split(i.args) if not w.startswith("--")]
        out.append((words[:-1], words[-1]))
    return out


def healthcheck_script() -> Path:
    """The repository file the image's ``HEALTHCHECK`` runs (through the COPY that put it there)."""
    (check,) = instructions("HEALTHCHECK")
    command = check.exec_form()
    assert command is not None and command[0] == "python", check
    target = PurePosixPath(command[1])
    workdir = PurePosixPath(instructions("WORKDIR")[-1].args)
    for sources, dest in copies():
        d = PurePosixPath(dest) if dest.startswith("/") else workdir / dest
        if d == target or (len(sources) == 1 and d / PurePosixPath(sources[0]).name == target):
            return ROOT / sources[0]
    raise AssertionError(f"no COPY puts {target} in the image")


def container_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**env_of(DOCKERFILE), **(extra or {})}


def packaged_settings(env: dict[str, str]):
    """The configuration inside the image: the packaged one (no ./config.toml in its WORKDIR) plus ``env``."""
    with resources.as_file(resources.files("posmon") / "default_config.toml") as path:
        return load_settings(path, env=env)


# ---- the Dockerfile ---------------------------------------------------------------------------------------------


def test_the_base_image_is_a_slim_python_pinned_to_a_version():
    froms = instructions("FROM")
    assert froms and DOCKERFILE[0].keyword == "FROM"
    for f in froms:
        image = f.args.split()[0]
        name, _, tag = image.partition(":")
        assert tag and tag != "latest" and "@" not in name, f"line {f.line}: {image} is not pinned"
        assert re.match(r"\d+\.\d+\.\d+-slim", tag), f"line {f.line}: expected a python:X.Y.Z-slim tag, got {tag}"
    base = froms[-1].args.split()[0]
    major_minor = re.match(r"\d+\.\d+", base.partition(":")[2]).group()
    assert tuple(map(int, major_minor.split("."))) >= (3, 11)  # pyproject: requires-python >= 3.11


def test_a_non_root_user_is_set_before_the_command():
    users = instructions("USER")
    assert users, "no USER: the container would run as root"
    run_at = min(i.line for i in DOCKERFILE if i.keyword in ("CMD", "ENTRYPOINT"))
    last_user = [u for u in users if u.line < run_at][-1]
    assert last_user.args.split(":")[0] not in ("root", "0")
    assert not [i for i in DOCKERFILE if i.keyword == "RUN" and i.line > last_user.line], "RUN as the runtime user"


def test_cmd_entrypoint_and_healthcheck_are_in_exec_form():
    for i in DOCKERFILE:
        if i.keyword in ("CMD", "ENTRYPOINT", "HEALTHCHECK"):
            assert i.exec_form() is not None, f"line {i.line}: {i.keyword} {i.args} is shell form"
    command = instructions("ENTRYPOINT")[-1].exec_form() + instructions("CMD")[-1].exec_form()
    assert command == ["posmon", "run"]


def test_no_add_and_pip_never_keeps_its_cache():
    assert not instructions("ADD"), "ADD (of a URL or an archive): use COPY, fetch with a checked download"
    pips = [i for i in instructions("RUN") if "pip install" in i.args]
    assert pips
    for i in pips:
        for command in re.split(r"&&|;|\bthen\b", i.args):
            if "pip install" in command:
                assert "--no-cache-dir" in command, f"line {i.line}: {command.strip()}"


def test_every_copy_source_exists_and_is_in_the_build_context():
    assert copies()
    for sources, _ in copies():
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            files = (
                [source]
                if (ROOT / source).is_file()
                else [p.relative_to(ROOT).as_posix() for p in (ROOT / source).rglob("*.py")]
            )
            assert files and not any(dockerignored(f, IGNORE) for f in files), f"{source} is left out by .dockerignore"


def test_dockerignore_keeps_the_context_small_and_the_build_inputs_in():
    for kept in (
        "pyproject.toml",
        "README.md",
        "posmon/daemon.py",
        "posmon/sim/data/x.json",
        "deploy/docker/healthcheck.py",
    ):
        assert not dockerignored(kept, IGNORE), kept
    for left_out in (
        ".git/HEAD",
        ".venv/bin/python",
        "tests/harness.py",
        "var/posmon.sqlite",
        "posmon/__pycache__/a.pyc",
    ):
        assert dockerignored(left_out, IGNORE), left_out
    assert dockerignored("deploy/grafana/posmon.json", IGNORE)


def test_the_healthcheck_asks_the_readiness_path_the_app_serves():
    (check,) = instructions("HEALTHCHECK")
    options = check.options()
    assert {"interval", "timeout", "start-period", "retries"} <= set(options)
    script = runpy.run_path(str(healthcheck_script()))
    path = script["READY_PATH"]
    app: object = create_app(_NeverCalled(), metrics_render=None, token=None)
    while not hasattr(app, "routes"):  # through the middleware to the router
        app = app.app  # type: ignore[attr-defined]
    routes = {r.path for r in app.routes}
    assert path == "/ready" and path in routes
    env = container_env()
    assert script["ready_url"](env) == f"http://127.0.0.1:{env['POSMON_API_PORT']}/ready"


def test_the_store_is_on_the_volume_and_the_api_port_is_exposed():
    env = container_env()
    settings = packaged_settings(env)
    store = PurePosixPath(settings.daemon.store)
    volumes = [v for i in instructions("VOLUME") for v in (i.exec_form() or i.args.split())]
    assert store.is_absolute() and any(store.parent == PurePosixPath(v) for v in volumes), (store, volumes)
    api = ApiSettings.from_config(settings.api, {**env, "POSMON_API_TOKEN": TOKEN})
    assert not api.loopback  # reachable through the published port...
    exposed = [p.split("/")[0] for i in instructions("EXPOSE") for p in i.args.split()]
    assert exposed == [str(api.port)]
    assert [i.args for i in instructions("STOPSIGNAL")] == ["SIGTERM"]


def test_the_image_holds_no_token_so_the_api_refuses_to_start_without_one():
    env = container_env()
    assert not [k for k in env if re.search("TOKEN|SECRET|KEY", k)], env
    with pytest.raises(ConfigError, match="without a token"):
        ApiSettings.from_config(packaged_settings(env).api, env)


def test_the_lighter_signer_pin_is_the_makefiles():
    (arg,) = [i for i in instructions("ARG") if i.args.startswith("LIGHTER_SDK_VERSION=")]
    pinned = re.search(r"lighter-sdk==([\w.]+)", (ROOT / "Makefile").read_text()).group(1)
    assert arg.args.partition("=")[2] == pinned


class _NeverCalled:
    def __getattr__(self, name):
        raise AssertionError(f"control.{name} called")


# ---- compose ----------------------------------------------------------------------------------------------------


def compose_env(env: dict[str, str]) -> dict[str, str]:
    return {k: interpolate(str(v), env) for k, v in SERVICE["environment"].items()}


def test_compose_builds_the_dockerfile_and_restarts_unless_stopped():
    build = SERVICE["build"]
    assert (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).resolve() == ROOT / "Dockerfile"
    assert SERVICE["restart"] == "unless-stopped"
    assert SERVICE.get("stop_signal", "SIGTERM") == "SIGTERM"


def test_compose_keeps_the_store_on_a_named_volume_at_the_images_volume():
    (mount,) = SERVICE["volumes"]
    name, target = mount.split(":")[:2]
    assert name in COMPOSE["volumes"], "a bind mount or an undeclared volume"
    store = PurePosixPath(packaged_settings(container_env(compose_env({"POSMON_API_TOKEN": TOKEN}))).daemon.store)
    assert store.parent == PurePosixPath(target)


def test_compose_healthcheck_runs_the_images_check():
    check = SERVICE["healthcheck"]
    (image_check,) = instructions("HEALTHCHECK")
    assert check["test"] == ["CMD", *image_check.exec_form()]
    assert {"interval", "timeout", "retries", "start_period"} <= set(check)


def test_compose_publishes_the_api_on_host_loopback_and_requires_a_token():
    with pytest.raises(MissingVariable, match="POSMON_API_TOKEN"):
        compose_env({})
    env = container_env(compose_env({"POSMON_API_TOKEN": TOKEN}))
    settings = packaged_settings(env)
    assert settings.daemon.venue == "aster" and venue_is_embedded(settings, env)  # the embedded simulator
    api = ApiSettings.from_config(settings.api, env)
    assert api.token == TOKEN and api.allowed_hosts == ()
    (port,) = SERVICE["ports"]
    host_ip, _, container_port = port.split(":")
    assert host_ip == "127.0.0.1" and container_port == str(api.port)  # a Host of 127.0.0.1/localhost: accepted
    remote = ApiSettings.from_config(settings.api, {**env, "POSMON_API_ALLOWED_HOSTS": "posmon.internal"})
    assert remote.allowed_hosts == ("posmon.internal",)


# ---- the health check, run for real ---------------------------------------------------------------------------


async def _healthcheck(url: str) -> tuple[int, str]:
    port = url.rsplit(":", 1)[1]
    env = {**os.environ, "POSMON_API_HOST": "0.0.0.0", "POSMON_API_PORT": port}
    with trio.fail_after(30):
        done = await trio.run_process(
            [sys.executable, str(healthcheck_script())], env=env, capture_stdout=True, capture_stderr=True, check=False
        )
    assert done.stderr == b"", done.stderr  # one line on stdout, never a traceback
    return done.returncode, done.stdout.decode()


async def test_the_healthcheck_script_passes_on_a_ready_daemon_and_fails_while_starting(tmp_path):
    async with running(make_settings(tmp_path)) as h:
        for readiness, expected in ((Readiness(), 1), (h.daemon.readiness, 0)):
            app = create_app(
                h.daemon.control, metrics_render=lambda: render(h.metrics), token=TOKEN, readiness=readiness
            )
            async with trio.open_nursery() as nursery:
                url = await nursery.start(serve_api, app, ApiSettings(port=0))
                code, out = await _healthcheck(url)
                nursery.cancel_scope.cancel()
            assert code == expected, out
            if expected:
                assert out.startswith("posmon not ready:") and "503" in out and '"starting"' in out
    code, out = await _healthcheck(url)  # nobody listens any more
    assert code == 1 and out.startswith("posmon not ready:") and out.count("\n") == 1
