"""What a service refuses with. Each class is one HTTP status in api/errors.py's handler, so a
service says what went wrong and the edge alone decides how it is answered."""

from __future__ import annotations


class ServiceError(Exception):
    code = "service_error"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or type(self).code
        self.param = param


class InvalidInput(ServiceError):
    """The request holds a value the domain refuses: answered 400."""

    code = "parameter_invalid"


class Conflict(ServiceError):
    """The object's state refuses the request: answered 409."""

    code = "conflict"


class Unavailable(ServiceError):
    """A dependency (the workflow engine) cannot be reached now; the same request may succeed
    later: answered 503 with Retry-After."""

    code = "temporal_unavailable"
    retry_after_s = 5
