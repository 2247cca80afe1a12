"""The API's one refusal type: what was wrong, which input it was, and the HTTP status to answer."""

from __future__ import annotations


class BadRequest(Exception):
    """A request refused before anything reaches the control object; ``field`` names the offending input."""

    def __init__(self, message: str, *, field: str, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.status = status
