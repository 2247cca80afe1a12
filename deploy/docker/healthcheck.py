"""The container's HEALTHCHECK: exit 0 when posmon's API answers ``GET /ready`` with 200, else 1 with one line.

Slim Python images have no curl; this needs only the standard library. ``/ready`` is public (no token) and the
request goes to loopback, whose Host the API always accepts. The port and bind address come from the same
``POSMON_API_PORT`` / ``POSMON_API_HOST`` variables the daemon reads.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

READY_PATH = "/ready"
WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1", "": "127.0.0.1"}


def ready_url(env: Mapping[str, str]) -> str:
    host = env.get("POSMON_API_HOST", "127.0.0.1")
    host = WILDCARDS.get(host, host).strip("[]")
    port = env.get("POSMON_API_PORT", "8787")
    return f"http://[{host}]:{port}{READY_PATH}" if ":" in host else f"http://{host}:{port}{READY_PATH}"


def main() -> int:
    url = ready_url(os.environ)
    try:
        with urllib.request.urlopen(url, timeout=4) as answer:
            return 0 if answer.status == 200 else 1
    except urllib.error.HTTPError as exc:
        print(f"posmon not ready: {url} answered {exc.code} {exc.read(200).decode(errors='replace')}")
    except (OSError, ValueError) as exc:
        print(f"posmon not ready: {url}: {exc}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
