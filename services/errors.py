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
    ├── BlobCorruptError             400 / DATA_LOSS  (uploaded bytes do not match their digest)
    ├── StoredBlobCorruptError       500 / DATA_LOSS  (a stored blob no longer matches its digest)
    ├── RequestTooLargeError         413 / INVALID_ARGUMENT
    ├── DiskFullError                507 / RESOURCE_EXHAUSTED
    └── TransferError                500 / INTERNAL   (a pull or push failed on our side)
        └── UpstreamError            502 / UNAVAILABLE (the remote registry refused or failed)

Anything else a process raises is a bug: ``internal_error`` turns it into a ``CorralError`` with a
generic message (the traceback goes to the log, never to a client), except a full disk, which
is the user's to fix and so says ``no space left on device``.

Each class declares its gRPC code and HTTP status. Translation happens once per boundary:
servers turn exceptions into statuses (``services.grpc_server``), clients turn statuses back into
exceptions (``from_rpc_error``), and one gateway middleware per wire dialect turns exceptions into
HTTP (Ollama's, OpenAI's, Anthropic's and the OCI registry's bodies).
The exact class travels in the ``corral-error`` trailing metadata key, so a client never has to
guess a type from a message string.
"""

from __future__ import annotations

import errno

import grpc
import structlog

ERROR_METADATA_KEY = "corral-error"
INTERNAL_MESSAGE = "internal server error; the server log has the details"
DISK_FULL_MESSAGE = "no space left on device"
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})

log = structlog.get_logger()


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


class StoredBlobCorruptError(CorralError):
    """A blob in the store no longer hashes to its digest (or is gone): the server's fault, and
    the message names the digest so the user can repair it."""

    grpc_code = grpc.StatusCode.DATA_LOSS
    http_status = 500


class RequestTooLargeError(CorralError):
    """A request body is larger than its route accepts (checked before it is read)."""

    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 413


class DiskFullError(CorralError):
    """The model store's filesystem is full. 507 (Insufficient Storage) where Ollama answers 500
    with the OS text: the same words, and a status that tells a client retrying will not help."""

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = 507


class TransferError(CorralError):
    """A pull or push failed on this side of the wire (a local write, a digest check), or the
    remote registry has no such manifest: Ollama answers these 500 with the same words.
    ``transient`` says whether retrying may help (it stays inside the registry process)."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class UpstreamError(TransferError):
    """The remote registry refused the request (401, 403, 5xx …), answered nonsense or could not
    be reached; the message carries its words. 502 (Bad Gateway) where Ollama answers 500: the
    fault is upstream, and a client must not read it as its own key being refused (a 401)."""

    grpc_code = grpc.StatusCode.UNAVAILABLE
    http_status = 502


_BY_NAME: dict[str, type[CorralError]] = {
    cls.__name__: cls
    for cls in (
        CorralError, InvalidRequestError, InvalidModelNameError, ModelNotFoundError,
        KeyNotFoundError, ConflictError, ServerBusyError, RunnerUnavailableError,
        RunnerCrashedError, RequestCancelledError, BlobCorruptError, StoredBlobCorruptError,
        RequestTooLargeError, DiskFullError, TransferError, UpstreamError,
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


def from_rpc_error(exc: grpc.aio.AioRpcError, peer: str = "server") -> CorralError:
    """Rebuild the domain exception a server raised from its gRPC status.

    A status without our ``corral-error`` key was made by gRPC itself (peer unreachable, message
    limits, deadlines): its details name addresses and socket paths, so the client gets a
    generic message about ``peer`` and the details go to the log.
    """
    trailing = dict(exc.trailing_metadata() or ())
    code = exc.code()
    if ERROR_METADATA_KEY in trailing:  # raised on purpose by our server: its words stand
        cls = error_class_named(trailing[ERROR_METADATA_KEY]) or _BY_CODE.get(code, CorralError)
        return cls(exc.details() or code.name.lower())
    log.warning("rpc_failed", peer=peer, code=code.name, details=exc.details())
    if code is grpc.StatusCode.UNAVAILABLE:
        return RunnerUnavailableError(f"the {peer} is unavailable")
    if code is grpc.StatusCode.CANCELLED:
        return RequestCancelledError("request canceled")
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return RequestTooLargeError(f"the request is too large for the {peer}")
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return CorralError(f"the {peer} did not answer in time")
    return CorralError(f"internal error in the {peer}")


def internal_error(exc: BaseException) -> CorralError:
    """What a client is told about an exception no code meant to raise (log it yourself)."""
    if is_disk_full(exc):
        return DiskFullError(DISK_FULL_MESSAGE)
    return CorralError(INTERNAL_MESSAGE)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) says the disk is full: ENOSPC,
    EDQUOT, or SQLite's ``database or disk is full``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _DISK_FULL_ERRNOS:
            return True
        if "database or disk is full" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False
