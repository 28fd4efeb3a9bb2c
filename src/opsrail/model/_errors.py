"""The error tree shared by every layer.

Each error has a stable ``code``, maps once to an HTTP status (rendered as RFC 9457
problem+json by the API) and to a CLI exit code, and says what to do next::

    OpsrailError
     ├── InvalidInput          400 / exit 2   input failed validation (carries field errors)
     │    └── MappingFailed    422 / exit 2   a vendor payload could not be mapped
     ├── Unauthenticated       401 / exit 3
     ├── Forbidden             403 / exit 3
     ├── NotFound              404 / exit 4
     ├── Conflict              409 / exit 5
     ├── PayloadTooLarge       413 / exit 2
     ├── UnsupportedMediaType  415 / exit 2
     └── Unavailable           503 / exit 6   a dependency (database, vendor) is down
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem in an input, located by a JSON path such as ``$.data.severity``."""

    path: str
    message: str
    code: str = "invalid"

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message, "code": self.code}


@dataclass(eq=False)
class OpsrailError(Exception):
    """Base of every error Opsrail raises on purpose."""

    detail: str
    hint: str | None = None
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    code: ClassVar[str] = "error"
    title: ClassVar[str] = "Error"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __post_init__(self) -> None:
        Exception.__init__(self, self.detail)

    def __str__(self) -> str:
        text = self.detail
        if self.hint:
            text = f"{text} ({self.hint})"
        return text


class InvalidInput(OpsrailError):
    code = "invalid-input"
    title = "Invalid input"
    http_status = 400
    exit_code = 2


class MappingFailed(InvalidInput):
    code = "mapping-failed"
    title = "Payload could not be mapped"
    http_status = 422


class Unauthenticated(OpsrailError):
    code = "unauthenticated"
    title = "Authentication required"
    http_status = 401
    exit_code = 3


class Forbidden(OpsrailError):
    code = "forbidden"
    title = "Forbidden"
    http_status = 403
    exit_code = 3


class NotFound(OpsrailError):
    code = "not-found"
    title = "Not found"
    http_status = 404
    exit_code = 4


class Conflict(OpsrailError):
    code = "conflict"
    title = "Conflict"
    http_status = 409
    exit_code = 5


class PayloadTooLarge(OpsrailError):
    code = "payload-too-large"
    title = "Payload too large"
    http_status = 413
    exit_code = 2


class UnsupportedMediaType(OpsrailError):
    code = "unsupported-media-type"
    title = "Unsupported media type"
    http_status = 415
    exit_code = 2


class RateLimited(OpsrailError):
    """Too many requests for one token; ``extra["retry_after"]`` says how many seconds to wait."""

    code = "rate-limited"
    title = "Too many requests"
    http_status = 429
    exit_code = 6


class Unavailable(OpsrailError):
    code = "unavailable"
    title = "Service unavailable"
    http_status = 503
    exit_code = 6


def json_path(loc: tuple[int | str, ...] | list[int | str], root: str = "$") -> str:
    """Render a pydantic error location as a JSON path: ``("data", "lines", 0)`` -> ``$.data.lines[0]``."""
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.isidentifier():
            path += f".{part}"
        else:
            path += f"[{part!r}]"
    return path


def require_one_of(what: str, given: str | None, allowed: Iterable[str]) -> None:
    """Refuse a filter or option value outside its vocabulary: a typo would otherwise match nothing, silently."""
    choices = tuple(allowed)
    if given is not None and given not in choices:
        raise InvalidInput(f"{what} {given!r} is not one of {', '.join(choices)}", hint="values are case-sensitive")
