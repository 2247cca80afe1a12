"""Bearer-token check: constant-time comparison, and refusals that say what is wrong without echoing tokens."""

from __future__ import annotations

import hmac

from posmon.api.errors import BadRequest

REALM = 'Bearer realm="posmon"'


class Unauthorized(BadRequest):
    """401 with the ``WWW-Authenticate`` challenge a client needs to know a bearer token is expected."""

    def __init__(self, message: str, challenge: str) -> None:
        super().__init__(message, field="Authorization", status=401)
        self.challenge = challenge


def check_bearer(authorization: str | None, token: bytes) -> None:
    """Raise ``Unauthorized`` unless ``authorization`` is ``Bearer <token>``; the comparison takes constant time."""
    if not authorization:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'", REALM)
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Unauthorized("expected 'Authorization: Bearer <token>'", f'{REALM}, error="invalid_request"')
    if not hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), token):
        raise Unauthorized("invalid bearer token", f'{REALM}, error="invalid_token"')
