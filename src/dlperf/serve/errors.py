"""The one exception the server turns into an HTTP answer.

Every client mistake is raised as a ``ServeError`` with the 4xx status the protocols document, deep in
whatever module spots it; the HTTP layer alone decides how the error body looks (ORT server's
``{"error_code", "error_message"}`` or KServe's ``{"error"}``), so codecs and models stay protocol-neutral.
"""
from __future__ import annotations


class ServeError(Exception):
    """A request that cannot be served, with the HTTP status that says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class ClosingError(ServeError):
    """An error after which the connection cannot be trusted to be in step (a body cut short, an invalid length):
    answered with ``Connection: close``, then closed."""
