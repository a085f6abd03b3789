"""The one domain error type: services raise it, the API handler maps it to JSON."""

from __future__ import annotations


class ApplicationError(Exception):
    """A refusal a client can act on: HTTP `status`, stable `code`, human `detail`.

    `extra` adds fields to the error body (e.g. field `errors`); `headers` adds response
    headers (e.g. `Retry-After`). Nothing secret may go in any of them.
    """

    status = 400

    def __init__(
        self,
        detail: str,
        *,
        code: str,
        status: int | None = None,
        extra: dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        if status is not None:
            self.status = status
        self.extra = extra or {}
        self.headers = headers or {}


class NotFound(ApplicationError):
    status = 404

    def __init__(self, detail: str = "Not found.", *, code: str = "not_found") -> None:
        super().__init__(detail, code=code)


class RateLimited(ApplicationError):
    status = 429

    def __init__(self, retry_after: int, detail: str = "Too many requests.") -> None:
        super().__init__(
            f"{detail} Try again in {retry_after} s.",
            code="rate_limited",
            extra={"retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
        )
