"""Where the store lives: a file path (SQLite, the default) or a ``postgresql://`` URL (shared PostgreSQL)."""

from __future__ import annotations

import re

_URL_RE = re.compile(r"^postgres(ql)?://", re.IGNORECASE)
_PASSWORD_RE = re.compile(r"^(postgres(?:ql)?://[^:/@]*:)[^@]*@", re.IGNORECASE)
_PASSWORD_PARAM_RE = re.compile(r"([?&]password=)[^&]*", re.IGNORECASE)


def is_url(location: str) -> bool:
    """True for a PostgreSQL store (``postgresql://`` or ``postgres://``); anything else is an SQLite path."""
    return bool(_URL_RE.match(location))


def redacted(location: str) -> str:
    """The location fit for a log line or an error: a password in the URL (``user:pw@`` or ``?password=``)
    becomes ``***``."""
    return _PASSWORD_PARAM_RE.sub(r"\1***", _PASSWORD_RE.sub(r"\1***@", location))
