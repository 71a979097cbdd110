"""Errors the emulated API answers with, in YooKassa's shape."""

import uuid


class ApiError(Exception):
    """An answer other than 200: `{"type": "error", "id", "code", "description", "parameter"}`."""

    def __init__(
        self,
        status: int,
        code: str,
        description: str,
        *,
        parameter: str | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description
        self.parameter = parameter
        self.retry_after_ms = retry_after_ms

    def body(self) -> dict:
        body = {"type": "error", "id": str(uuid.uuid4()), "code": self.code, "description": self.description}
        if self.parameter:
            body["parameter"] = self.parameter
        if self.retry_after_ms is not None:
            body["retry_after"] = self.retry_after_ms
        return body


def invalid_request(description: str, parameter: str | None = None) -> ApiError:
    return ApiError(400, "invalid_request", description, parameter=parameter)


def not_found(description: str, parameter: str | None = None) -> ApiError:
    return ApiError(404, "not_found", description, parameter=parameter)


def forbidden(description: str, parameter: str | None = None) -> ApiError:
    return ApiError(403, "forbidden", description, parameter=parameter)
