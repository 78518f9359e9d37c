"""Corral's one error taxonomy, shared by every process.

    CorralError                      500 / INTERNAL
    ├── InvalidRequestError          400 / INVALID_ARGUMENT
    │   └── InvalidModelNameError    400 / INVALID_ARGUMENT
    ├── ModelNotFoundError           404 / NOT_FOUND
    ├── KeyNotFoundError             404 / NOT_FOUND
    ├── ConflictError                409 / ALREADY_EXISTS
    ├── ServerBusyError              503 / RESOURCE_EXHAUSTED
    ├── RunnerUnavailableError       503 / UNAVAILABLE
    ├── RunnerCrashedError           500 / INTERNAL   (the runner process died mid-request)
    ├── RequestCancelledError        499 / CANCELLED
    └── BlobCorruptError             400 / DATA_LOSS

Each class declares its gRPC code and HTTP status. Translation happens once per boundary:
servers turn exceptions into statuses (``services.grpc_server``), clients turn statuses back into
exceptions (``from_rpc_error``), and one gateway middleware turns exceptions into HTTP.
The exact class travels in the ``corral-error`` trailing metadata key, so a client never has to
guess a type from a message string.
"""

from __future__ import annotations

import grpc

ERROR_METADATA_KEY = "corral-error"


class CorralError(Exception):
    """Base of every error Corral reports on purpose; the message is user-facing."""

    grpc_code = grpc.StatusCode.INTERNAL
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequestError(CorralError):
    """The request is malformed or asks for something the model cannot do."""

    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 400


class InvalidModelNameError(InvalidRequestError):
    """A model name breaks Ollama's name grammar."""

    def __init__(self, message: str = "invalid model name") -> None:
        super().__init__(message)


class ModelNotFoundError(CorralError):
    """No local model has this name; the message carries the endpoint's own wording."""

    grpc_code = grpc.StatusCode.NOT_FOUND
    http_status = 404


class KeyNotFoundError(CorralError):
    """No API key has this name."""

    grpc_code = grpc.StatusCode.NOT_FOUND
    http_status = 404


class ConflictError(CorralError):
    """The thing to create exists already (e.g. an API key of the same name)."""

    grpc_code = grpc.StatusCode.ALREADY_EXISTS
    http_status = 409


class ServerBusyError(CorralError):
    """The request queue is full."""

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = 503


class RunnerUnavailableError(CorralError):
    """A runner could not be started or reached."""

    grpc_code = grpc.StatusCode.UNAVAILABLE
    http_status = 503


class RunnerCrashedError(CorralError):
    """The runner serving this request exited; the message names the exit cause."""

    grpc_code = grpc.StatusCode.INTERNAL
    http_status = 500


class RequestCancelledError(CorralError):
    """The client went away before the request finished."""

    grpc_code = grpc.StatusCode.CANCELLED
    http_status = 499


class BlobCorruptError(CorralError):
    """Bytes did not match the digest they were sent under."""

    grpc_code = grpc.StatusCode.DATA_LOSS
    http_status = 400


_BY_NAME: dict[str, type[CorralError]] = {
    cls.__name__: cls
    for cls in (
        CorralError, InvalidRequestError, InvalidModelNameError, ModelNotFoundError,
        KeyNotFoundError, ConflictError, ServerBusyError, RunnerUnavailableError, RunnerCrashedError, RequestCancelledError,
        BlobCorruptError,
    )
}
_BY_CODE: dict[grpc.StatusCode, type[CorralError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequestError,
    grpc.StatusCode.NOT_FOUND: ModelNotFoundError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ServerBusyError,
    grpc.StatusCode.UNAVAILABLE: RunnerUnavailableError,
    grpc.StatusCode.CANCELLED: RequestCancelledError,
    grpc.StatusCode.DATA_LOSS: BlobCorruptError,
    grpc.StatusCode.ALREADY_EXISTS: ConflictError,
}


def error_class_named(name: str | None) -> type[CorralError] | None:
    """The taxonomy class called ``name``, if there is one."""
    return _BY_NAME.get(name or "")


def from_rpc_error(exc: grpc.aio.AioRpcError) -> CorralError:
    """Rebuild the domain exception a server raised from its gRPC status."""
    trailing = dict(exc.trailing_metadata() or ())
    cls = error_class_named(trailing.get(ERROR_METADATA_KEY)) or _BY_CODE.get(exc.code(), CorralError)
    return cls(exc.details() or exc.code().name.lower())
