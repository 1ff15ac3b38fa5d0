"""GraphQL over plain HTTP (`requests`) to a Dagster webserver, with the one place that maps failures to errors.

Every call, reading or acting, is a POST of a document to `<url>/graphql`. A failure surfaces as a
`PlatformGraphQLError` with a one-line message: `WebserverUnreachable` when nothing (or nothing that speaks
GraphQL) answers at the URL, `RunNotFound` for an unknown run id, and `<ResultType>: <message>` for the typed
errors of Dagster's `…OrError` result unions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

import requests

from platform_assets.lib.config import DAGSTER_WEBSERVER_DEFAULT_URL
from platform_assets.ops.graphql.errors import (
    PlatformGraphQLError,
    RunNotFound,
    WebserverUnreachable,
    first_line,
)

DEFAULT_WEBSERVER_URL = DAGSTER_WEBSERVER_DEFAULT_URL
# The result types Dagster answers with for an unknown run id (the second is the pre-1.0 name, still in the schema).
_RUN_NOT_FOUND = frozenset({"RunNotFoundError", "PipelineRunNotFoundError"})


class GraphQLTransport:
    """POSTs GraphQL documents to one webserver and turns every failure into a one-line error.

    `url` is the webserver's base URL (`http://127.0.0.1:3000`, `https://dagster.example.com/prefix`); a bare
    `host:port` means http.
    """

    def __init__(self, url: str = DEFAULT_WEBSERVER_URL, timeout: float = 30.0) -> None:
        parsed = urlparse(url if "://" in url else f"http://{url}")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise PlatformGraphQLError(
                f"not a webserver URL: {url!r} (expected e.g. {DEFAULT_WEBSERVER_URL})"
            )
        self.url = f"{parsed.scheme}://{parsed.netloc}{parsed.path.rstrip('/')}"
        self.graphql_url = f"{self.url}/graphql"
        self.timeout = timeout

    def execute(self, document: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run a GraphQL query or mutation; return its `data`."""
        try:
            response = requests.post(
                self.graphql_url,
                json={"query": document, "variables": dict(variables or {})},
                timeout=self.timeout,
            )
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as err:
            raise WebserverUnreachable(
                f"cannot reach the Dagster webserver at {self.url} ({_connection_reason(err)}); is it running? "
                "Point --url or DAGSTER_WEBSERVER_URL at it."
            ) from err
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or ("data" not in payload and "errors" not in payload):
            raise WebserverUnreachable(
                f"{self.graphql_url} answered HTTP {response.status_code} without GraphQL: "
                "is this a Dagster webserver?"
            )
        if payload.get("errors"):
            raise PlatformGraphQLError(f"GraphQL error: {first_line(payload['errors'][0].get('message'))}")
        return payload["data"]

    def expect(self, result: Mapping[str, Any], *expected: str, run_id: str | None = None) -> dict[str, Any]:
        """Return a typed result when its `__typename` is one of `expected`; otherwise raise its error.

        `run_id` names the run the call was about, so an unknown id becomes `RunNotFound`.
        """
        kind = result["__typename"]
        if kind in expected:
            return dict(result)
        if kind in _RUN_NOT_FOUND and run_id is not None:
            raise RunNotFound(f"run {run_id} not found on {self.url}")
        if kind == "RunConfigValidationInvalid":
            detail = "; ".join(first_line(error.get("message")) for error in result.get("errors") or [])
        elif kind == "InvalidStepError":
            detail = f"no step {result.get('invalidStepKey')!r}"
        else:
            detail = first_line(result.get("message"))
        raise PlatformGraphQLError(f"{kind}: {detail}")


def _connection_reason(err: BaseException) -> str:
    """'connection refused', 'timed out', … rather than urllib3's nested repr."""
    if isinstance(err, requests.exceptions.Timeout):
        return "timed out"
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(err))
    return found.group(1).strip().lower() if found else first_line(err)
