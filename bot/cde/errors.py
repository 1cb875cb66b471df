"""The CDE client's errors. Every foreign exception (httpx, JSON, pydantic) becomes one of
these at the client boundary, so callers handle the domain and never a transport detail.

    CdeError
    ├── CdeRejected            the API answered no to this request; retrying will not help
    │   ├── CdeBadRequest      400, with the API's per-field messages
    │   ├── CdeUnauthorized    401: the bot's token is wrong or expired
    │   ├── CdeForbidden       403: the bot's CDE account may not see this
    │   └── CdeNotFound        404
    ├── CdeUnavailable         could not get an answer (retryable)
    │   ├── CdeRateLimited     429, with Retry-After when given
    │   ├── CdeServerError     5xx
    │   ├── CdeTimeout
    │   └── CdeConnectionError
    └── CdeProtocolError       an answer we cannot read: not JSON, wrong shape, odd status

No message ever contains the API token.
"""

from __future__ import annotations


class CdeError(Exception):
    """Base of every CDE client error."""

    status: int | None = None

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class CdeRejected(CdeError):
    """The API understood the request and refused it."""


class CdeBadRequest(CdeRejected):
    status = 400

    def __init__(self, message: str, field_errors: dict[str, str]) -> None:
        super().__init__(message)
        self.field_errors = field_errors


class CdeUnauthorized(CdeRejected):
    status = 401


class CdeForbidden(CdeRejected):
    status = 403


class CdeNotFound(CdeRejected):
    status = 404


class CdeUnavailable(CdeError):
    """No usable answer this time; the same request may succeed later."""


class CdeRateLimited(CdeUnavailable):
    status = 429

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CdeServerError(CdeUnavailable):
    pass


class CdeTimeout(CdeUnavailable):
    pass


class CdeConnectionError(CdeUnavailable):
    pass


class CdeProtocolError(CdeError):
    """The API answered something this client cannot read."""
