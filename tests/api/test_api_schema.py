"""Schemathesis against the served ``/openapi.json`` (issue 11): no 5xx, and no answer the document does not declare.

The API runs on a real loopback socket (hypercorn's trio worker in a background thread, since schemathesis
calls synchronously) over the recording ``FakeControl``. Example count: 50 generated cases (schema-valid and
schema-violating alike) for each of the 6 operations with parameters or a body, and 1 for each of the 4
parameterless GETs: 304 requests, about 15 seconds.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
import trio
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from posmon.api import create_app
from posmon.api.openapi import openapi_schema
from tests.api.test_api_fakes import FakeControl, served

EXAMPLES_PER_OPERATION = 50
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    """The API on 127.0.0.1 and a free port, served from a trio loop in a thread for the module's tests."""
    ready: queue.Queue[tuple[str, trio.lowlevel.TrioToken, trio.CancelScope]] = queue.Queue()

    async def serve() -> None:
        with trio.CancelScope() as scope:
            app = create_app(FakeControl(), metrics_render=lambda: (b"posmon_up 1\n", "text/plain"), token=None)
            async with served(app) as url:
                ready.put((url, trio.lowlevel.current_trio_token(), scope))
                await trio.sleep_forever()

    thread = threading.Thread(target=trio.run, args=(serve,), daemon=True)
    thread.start()
    url, token, scope = ready.get(timeout=30)
    yield url
    trio.from_thread.run_sync(scope.cancel, trio_token=token)
    thread.join(timeout=30)


# The document the app serves on loopback without a token (the test below proves the served one is this one);
# loaded at import so schemathesis can make one test per operation.
schema = schemathesis.openapi.from_dict(openapi_schema(bearer_required=False))


def test_the_served_document_is_the_one_under_test(api_url: str) -> None:
    served_doc = httpx.get(f"{api_url}/openapi.json").json()
    assert served_doc == schemathesis.openapi.from_dict(served_doc).raw_schema == schema.raw_schema


# GET /api/stream is an endless event stream (ending itself after ~25 s): tests/api/test_api_stream.py covers it.
@schema.exclude(path="/api/stream").parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_within_its_schema_and_never_5xx(case: schemathesis.Case, api_url: str) -> None:
    """50 cases per operation with inputs (6), 1 per parameterless GET (4): answers declared, well-formed, no 5xx."""
    case.call_and_validate(base_url=api_url, checks=CHECKS)


# What the document promises for an order is a subset of what the server accepts: a client generating LONG
# orders from it is never refused (a SHORT's cross-field bound, TP above zero, is stated in the description).
long_orders = schemathesis.openapi.from_dict(openapi_schema(bearer_required=False)).include(path="/api/orders/long")
long_orders.config.generation.update(modes=[schemathesis.GenerationMode.POSITIVE])


@long_orders.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_an_order_built_from_the_schema_is_accepted(case: schemathesis.Case, api_url: str) -> None:
    """50 schema-valid LONG orders: each answered 2xx, none refused for a value the schema allowed."""
    case.call_and_validate(base_url=api_url, checks=[not_a_server_error, positive_data_acceptance])
