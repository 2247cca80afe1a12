"""Start-up against a venue that may be down, slow, rate limiting or refusing our keys.

A daemon started while the exchange has an outage should wait for it (with backoff and a log line per try)
and give up after a bounded time with one line and exit code 3; rejected credentials are not retried: the
operator must fix a setting, and the line names the settings involved and the venue's own message. Every
failure here is a ``StartupFailure`` carrying its exit code, so ``posmon run`` prints it without a traceback.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Any, TypeVar

import trio

from posmon.cli.exit_codes import ExitCode
from posmon.config import Settings
from posmon.domain.orders import SymbolRules
from posmon.exchange.errors import AuthRejected, Banned, OutcomeUnknown, RateLimited, Rejected
from posmon.exchange.events import MalformedMessage
from posmon.exchange.lighter.signer import SignError, SignerUnavailable
from posmon.exchange.venue import Venue

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "CredentialsRejected",
    "StartupFailure",
    "VenueRefused",
    "VenueUnreachable",
    "check_recording",
    "connect_venue",
    "credential_settings",
    "retry_startup",
    "venue_is_embedded",
]

#: How long start-up keeps retrying an unreachable or failing venue before exit 3 (``--connect-timeout``);
#: the configuration key for it would be ``[daemon] startup_timeout_seconds``.
CONNECT_TIMEOUT_SECONDS = 60.0
#: Backoff between tries: doubles from the first to the cap (a 429/418's Retry-After is honoured when longer).
FIRST_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS = 0.5, 15.0
#: The shortest a try may be given, even when the start-up time is nearly up.
MIN_TRY_SECONDS = 0.5
#: Lighter answers 21100 ("account not found") for an account index that is not the key's: a settings error.
LIGHTER_ACCOUNT_NOT_FOUND = 21100

# Failures that may pass: no answer, a 5xx, a rate limit or ban, an unreadable answer, a refused connection.
_TRANSIENT = (OutcomeUnknown, RateLimited, MalformedMessage, trio.TooSlowError, OSError)

_T = TypeVar("_T")


class StartupFailure(Exception):
    """One line saying what stopped start-up; ``exit_code`` is what ``posmon run`` exits with."""

    exit_code = ExitCode.FAILED


class CredentialsRejected(StartupFailure):
    """The venue refused our keys (Aster -2015/-2014/-1022, Lighter 21100/21108): never retried."""

    exit_code = ExitCode.UNREACHABLE


class VenueUnreachable(StartupFailure):
    """No usable answer from the venue within the start-up time, after retries."""

    exit_code = ExitCode.UNREACHABLE


class VenueRefused(StartupFailure):
    """The venue refused a start-up request for a reason no retry fixes."""

    exit_code = ExitCode.UNREACHABLE


class SignerMissing(StartupFailure):
    """Lighter's signing library is not installed or cannot load here: fixed by installing, not by waiting."""

    exit_code = ExitCode.CONFIG


class RecordingMissing(StartupFailure):
    """``sim.recording`` names no packaged recording: a configuration error."""

    exit_code = ExitCode.CONFIG


def credential_settings(venue: str, auth: str | None = None) -> str:
    """The settings (and their environment variables) that hold ``venue``'s credentials, for an error line."""
    if venue == "aster":
        if auth == "v3":
            return (
                "[aster] user / signer / signer_private_key (POSMON_ASTER_USER / POSMON_ASTER_SIGNER / "
                "POSMON_ASTER_SIGNER_PRIVATE_KEY)"
            )
        if auth == "v1":
            return "[aster] api_key / api_secret (POSMON_ASTER_API_KEY / POSMON_ASTER_API_SECRET)"
        return '[aster] api_key / api_secret, or user / signer / signer_private_key for auth = "v3" (POSMON_ASTER_*)'
    if venue == "lighter":
        return (
            "[lighter] account_index / api_key_index / api_private_key (POSMON_LIGHTER_ACCOUNT_INDEX / "
            "POSMON_LIGHTER_API_KEY_INDEX / POSMON_LIGHTER_API_PRIVATE_KEY)"
        )
    return f"[{venue}] credentials"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).replace(" (code None)", "").split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _credentials_refused(exc: Rejected) -> bool:
    return isinstance(exc, AuthRejected) or exc.code == LIGHTER_ACCOUNT_NOT_FOUND


async def retry_startup(
    step: Callable[[], Awaitable[_T]],
    *,
    venue: str,
    what: str,
    give_up_after: float,
    log: logging.Logger | logging.LoggerAdapter[Any],
    per_try: float = 30.0,
    auth: str | None = None,
    retry: bool = True,
) -> _T:
    """``await step()`` until it succeeds, retrying transient failures with backoff for ``give_up_after`` seconds.

    Each try is bounded by ``per_try`` (a venue that accepts the connection and never answers is a failed
    try). Raises ``CredentialsRejected`` at once for refused keys, ``VenueRefused`` for other refusals,
    ``VenueUnreachable`` when the time is up (or at once with ``retry=False``).
    """
    deadline = trio.current_time() + give_up_after
    delay = FIRST_BACKOFF_SECONDS
    for attempt in itertools.count(1):
        this_try = max(min(per_try, deadline - trio.current_time()), MIN_TRY_SECONDS)
        try:
            with trio.fail_after(this_try):
                return await step()
        except SignerUnavailable as exc:
            raise SignerMissing(f"configuration error: {venue}: {_one_line(exc)}") from exc
        except SignError as exc:
            raise CredentialsRejected(
                f"{venue}: the signer refused the key: {_one_line(exc)}; check {credential_settings(venue, auth)}"
            ) from exc
        except Rejected as exc:
            if _credentials_refused(exc):
                raise CredentialsRejected(
                    f"{venue} rejected the credentials: {_one_line(exc)}; check {credential_settings(venue, auth)}"
                ) from exc
            raise VenueRefused(f"{venue} refused {what}: {_one_line(exc)}") from exc
        except _TRANSIENT as exc:
            last: BaseException = exc
            if isinstance(exc, trio.TooSlowError):
                last = trio.TooSlowError(f"no answer within {this_try:g} s")
        left = deadline - trio.current_time()
        pause = float(getattr(last, "retry_after", 0.0))
        if retry and isinstance(last, Banned) and pause >= left:
            # Asking again before Retry-After only lengthens a ban: give up now, saying how long it lasts.
            raise VenueUnreachable(
                f"{venue} unreachable: {what} refused for {pause:g} s (Retry-After), longer than the "
                f"{max(left, 0):.0f} s left of {give_up_after:g} s: {_one_line(last)}; start again later "
                "(the wait is --connect-timeout)"
            )
        if not retry or left <= 0:
            raise VenueUnreachable(
                f"{venue} unreachable: {what} failed {attempt} time(s) over {give_up_after:g} s, last: "
                f"{_one_line(last)}; check the venue's URL and status (the wait is --connect-timeout)"
            )
        wait = min(max(delay, pause), left)
        log.warning("%s: %s failed (try %d): %s; retrying in %.1f s", venue, what, attempt, _one_line(last), wait)
        await trio.sleep(wait)
        delay = min(delay * 2, MAX_BACKOFF_SECONDS)
    raise AssertionError("unreachable")


async def connect_venue(
    venue: Venue,
    *,
    give_up_after: float,
    log: logging.Logger | logging.LoggerAdapter[Any],
    per_try: float | None = None,
) -> dict[str, SymbolRules]:
    """``venue.load_rules()`` with retries, a per-try timeout and backoff (see ``retry_startup``).

    ``per_try`` defaults to three of the venue's request timeouts (30 s when it has none).
    """
    if per_try is None:
        per_try = 3 * venue.traits.request_timeout_seconds
    return await retry_startup(
        venue.load_rules,
        venue=venue.name,
        what="loading the trading rules",
        give_up_after=give_up_after,
        log=log,
        per_try=per_try,
        auth=venue.traits.auth,
    )


def venue_is_embedded(settings: Settings, env: Mapping[str, str] | None = None, *, name: str | None = None) -> bool:
    """True when the venue (``name``, default ``[daemon] venue``) is a simulator posmon starts itself (no URLs
    configured): nothing to wait for."""
    env = os.environ if env is None else env
    name = name or settings.daemon.venue
    if name == "aster":
        from posmon.exchange.aster.settings import AsterSettings

        return AsterSettings.from_config(settings.aster, env).embedded
    if name == "lighter":
        from posmon.exchange.lighter.settings import LighterSettings

        return LighterSettings.from_config(settings.lighter, env).embedded
    return True


def check_recording(settings: Settings, env: Mapping[str, str] | None = None) -> None:
    """A mistyped ``sim.recording`` stops start-up before anything runs (only where the recording is replayed)."""
    if not any(
        name == "sim" or (name == "aster" and venue_is_embedded(settings, env, name="aster"))
        for name in settings.daemon.venue_names
    ):
        return  # the Lighter simulator replays its own recording; a real venue none
    recording = settings.sim.recording
    file = recording if recording.endswith(".json") else recording + ".json"
    data = resources.files("posmon.sim") / "data"
    if "/" in file or not (data / file).is_file():
        known = sorted(p.name for p in data.iterdir() if p.name.endswith(".json"))
        raise RecordingMissing(
            f"configuration error: sim.recording: {recording!r} is not a packaged recording; "
            f"expected one of {', '.join(repr(k) for k in known)}"
        )
