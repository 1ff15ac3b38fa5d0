"""The errors a call to the Dagster webserver raises: one line each, meant for a person."""

from __future__ import annotations


class PlatformGraphQLError(Exception):
    """A call to the Dagster webserver failed; the message is one line meant for a person."""


class WebserverUnreachable(PlatformGraphQLError):
    """Nothing (or nothing that speaks Dagster GraphQL) answers at the webserver URL."""


class RunNotFound(PlatformGraphQLError):
    """The webserver's instance has no run with that id."""


class TerminateRunFailed(PlatformGraphQLError):
    """The webserver could not stop a run that has not ended (its worker may be gone); `status` is its status."""

    def __init__(self, message: str, run_id: str, status: str) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.status = status


def first_line(value: object) -> str:
    """The first non-empty line of a message, so every error stays on one line."""
    for line in str(value or "").splitlines():
        if line.strip():
            return line.strip()
    return ""
