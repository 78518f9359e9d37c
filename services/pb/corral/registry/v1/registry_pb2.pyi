import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KeyStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_STATUS_UNSPECIFIED: _ClassVar[KeyStatus]
    KEY_STATUS_VALID: _ClassVar[KeyStatus]
    KEY_STATUS_UNKNOWN: _ClassVar[KeyStatus]
    KEY_STATUS_EXPIRED: _ClassVar[KeyStatus]
KEY_STATUS_UNSPECIFIED: KeyStatus
KEY_STATUS_VALID: KeyStatus
KEY_STATUS_UNKNOWN: KeyStatus
KEY_STATUS_EXPIRED: KeyStatus

class ModelDetails(_message.Message):
    __slots__ = ("parent_model", "format", "family", "families", "parameter_size", "quantization_level", "context_length", "embedding_length")
    PARENT_MODEL_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    FAMILIES_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_SIZE_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_LENGTH_FIELD_NUMBER: _ClassVar[int]
    parent_model: str
    format: str
    family: str
    families: _containers.RepeatedScalarFieldContainer[str]
    parameter_size: str
    quantization_level: str
    context_length: int
    embedding_length: int
    def __init__(self, parent_model: _Optional[str] = ..., format: _Optional[str] = ..., family: _Optional[str] = ..., families: _Optional[_Iterable[str]] = ..., parameter_size: _Optional[str] = ..., quantization_level: _Optional[str] = ..., context_length: _Optional[int] = ..., embedding_length: _Optional[int] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class ModelSummary(_message.Message):
    __slots__ = ("name", "digest", "size", "modified_at", "details", "capabilities")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    name: str
    digest: str
    size: int
    modified_at: _timestamp_pb2.Timestamp
    details: ModelDetails
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., digest: _Optional[str] = ..., size: _Optional[int] = ..., modified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., details: _Optional[_Union[ModelDetails, _Mapping]] = ..., capabilities: _Optional[_Iterable[str]] = ...) -> None: ...

class ResolveModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ResolveModelResponse(_message.Message):
    __slots__ = ("model", "model_path", "template", "chat_template", "system", "parameters", "messages", "bos_token", "eos_token", "adapter_paths", "renderer", "parser", "projector_paths", "blobs", "kv_cache_shape")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_PATH_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    CHAT_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    BOS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EOS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_PATHS_FIELD_NUMBER: _ClassVar[int]
    RENDERER_FIELD_NUMBER: _ClassVar[int]
    PARSER_FIELD_NUMBER: _ClassVar[int]
    PROJECTOR_PATHS_FIELD_NUMBER: _ClassVar[int]
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    KV_CACHE_SHAPE_FIELD_NUMBER: _ClassVar[int]
    model: ModelSummary
    model_path: str
    template: str
    chat_template: str
    system: str
    parameters: _struct_pb2.Struct
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    bos_token: str
    eos_token: str
    adapter_paths: _containers.RepeatedScalarFieldContainer[str]
    renderer: str
    parser: str
    projector_paths: _containers.RepeatedScalarFieldContainer[str]
    blobs: _containers.RepeatedCompositeFieldContainer[BlobRef]
    kv_cache_shape: KvCacheShape
    def __init__(self, model: _Optional[_Union[ModelSummary, _Mapping]] = ..., model_path: _Optional[str] = ..., template: _Optional[str] = ..., chat_template: _Optional[str] = ..., system: _Optional[str] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., bos_token: _Optional[str] = ..., eos_token: _Optional[str] = ..., adapter_paths: _Optional[_Iterable[str]] = ..., renderer: _Optional[str] = ..., parser: _Optional[str] = ..., projector_paths: _Optional[_Iterable[str]] = ..., blobs: _Optional[_Iterable[_Union[BlobRef, _Mapping]]] = ..., kv_cache_shape: _Optional[_Union[KvCacheShape, _Mapping]] = ...) -> None: ...

class KvCacheShape(_message.Message):
    __slots__ = ("block_count", "head_count", "head_count_kv", "key_length", "value_length", "f16_bytes_per_token")
    BLOCK_COUNT_FIELD_NUMBER: _ClassVar[int]
    HEAD_COUNT_FIELD_NUMBER: _ClassVar[int]
    HEAD_COUNT_KV_FIELD_NUMBER: _ClassVar[int]
    KEY_LENGTH_FIELD_NUMBER: _ClassVar[int]
    VALUE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    F16_BYTES_PER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    block_count: int
    head_count: int
    head_count_kv: int
    key_length: int
    value_length: int
    f16_bytes_per_token: int
    def __init__(self, block_count: _Optional[int] = ..., head_count: _Optional[int] = ..., head_count_kv: _Optional[int] = ..., key_length: _Optional[int] = ..., value_length: _Optional[int] = ..., f16_bytes_per_token: _Optional[int] = ...) -> None: ...

class BlobRef(_message.Message):
    __slots__ = ("digest", "size", "path")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    digest: str
    size: int
    path: str
    def __init__(self, digest: _Optional[str] = ..., size: _Optional[int] = ..., path: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelSummary]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelSummary, _Mapping]]] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("status", "digest", "total", "completed", "transferred")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    TRANSFERRED_FIELD_NUMBER: _ClassVar[int]
    status: str
    digest: str
    total: int
    completed: int
    transferred: int
    def __init__(self, status: _Optional[str] = ..., digest: _Optional[str] = ..., total: _Optional[int] = ..., completed: _Optional[int] = ..., transferred: _Optional[int] = ...) -> None: ...

class ShowModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ShowModelResponse(_message.Message):
    __slots__ = ("model", "model_path", "template", "chat_template", "system", "license", "parameters", "messages", "model_info", "capabilities", "adapters", "renderer", "parser", "projector_info", "projectors", "adapter_paths", "projector_paths")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_PATH_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    CHAT_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MODEL_INFO_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    ADAPTERS_FIELD_NUMBER: _ClassVar[int]
    RENDERER_FIELD_NUMBER: _ClassVar[int]
    PARSER_FIELD_NUMBER: _ClassVar[int]
    PROJECTOR_INFO_FIELD_NUMBER: _ClassVar[int]
    PROJECTORS_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_PATHS_FIELD_NUMBER: _ClassVar[int]
    PROJECTOR_PATHS_FIELD_NUMBER: _ClassVar[int]
    model: ModelSummary
    model_path: str
    template: str
    chat_template: str
    system: str
    license: _containers.RepeatedScalarFieldContainer[str]
    parameters: _struct_pb2.Struct
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    model_info: _struct_pb2.Struct
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    adapters: _containers.RepeatedScalarFieldContainer[str]
    renderer: str
    parser: str
    projector_info: _struct_pb2.Struct
    projectors: _containers.RepeatedScalarFieldContainer[str]
    adapter_paths: _containers.RepeatedScalarFieldContainer[str]
    projector_paths: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model: _Optional[_Union[ModelSummary, _Mapping]] = ..., model_path: _Optional[str] = ..., template: _Optional[str] = ..., chat_template: _Optional[str] = ..., system: _Optional[str] = ..., license: _Optional[_Iterable[str]] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., model_info: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., capabilities: _Optional[_Iterable[str]] = ..., adapters: _Optional[_Iterable[str]] = ..., renderer: _Optional[str] = ..., parser: _Optional[str] = ..., projector_info: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., projectors: _Optional[_Iterable[str]] = ..., adapter_paths: _Optional[_Iterable[str]] = ..., projector_paths: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateModelRequest(_message.Message):
    __slots__ = ("name", "files", "adapters", "template", "system", "parameters", "messages", "license", "quantize", "renderer", "parser")
    class FilesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class AdaptersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    ADAPTERS_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    QUANTIZE_FIELD_NUMBER: _ClassVar[int]
    RENDERER_FIELD_NUMBER: _ClassVar[int]
    PARSER_FIELD_NUMBER: _ClassVar[int]
    name: str
    files: _containers.ScalarMap[str, str]
    adapters: _containers.ScalarMap[str, str]
    template: str
    system: str
    parameters: _struct_pb2.Struct
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    license: _containers.RepeatedScalarFieldContainer[str]
    quantize: str
    renderer: str
    parser: str
    def __init__(self, name: _Optional[str] = ..., files: _Optional[_Mapping[str, str]] = ..., adapters: _Optional[_Mapping[str, str]] = ..., template: _Optional[str] = ..., system: _Optional[str] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., license: _Optional[_Iterable[str]] = ..., quantize: _Optional[str] = ..., renderer: _Optional[str] = ..., parser: _Optional[str] = ..., **kwargs) -> None: ...

class CopyModelRequest(_message.Message):
    __slots__ = ("source", "destination")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    source: str
    destination: str
    def __init__(self, source: _Optional[str] = ..., destination: _Optional[str] = ...) -> None: ...

class CopyModelResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeleteModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteModelResponse(_message.Message):
    __slots__ = ("pruned",)
    PRUNED_FIELD_NUMBER: _ClassVar[int]
    pruned: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, pruned: _Optional[_Iterable[str]] = ...) -> None: ...

class StatBlobRequest(_message.Message):
    __slots__ = ("digest",)
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    digest: str
    def __init__(self, digest: _Optional[str] = ...) -> None: ...

class StatBlobResponse(_message.Message):
    __slots__ = ("exists", "size", "path")
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    exists: bool
    size: int
    path: str
    def __init__(self, exists: _Optional[bool] = ..., size: _Optional[int] = ..., path: _Optional[str] = ...) -> None: ...

class PutBlobRequest(_message.Message):
    __slots__ = ("digest", "chunk")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    digest: str
    chunk: bytes
    def __init__(self, digest: _Optional[str] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class PutBlobResponse(_message.Message):
    __slots__ = ("created", "size")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    created: bool
    size: int
    def __init__(self, created: _Optional[bool] = ..., size: _Optional[int] = ...) -> None: ...

class PullModelRequest(_message.Message):
    __slots__ = ("name", "insecure")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INSECURE_FIELD_NUMBER: _ClassVar[int]
    name: str
    insecure: bool
    def __init__(self, name: _Optional[str] = ..., insecure: _Optional[bool] = ...) -> None: ...

class PushModelRequest(_message.Message):
    __slots__ = ("name", "insecure")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INSECURE_FIELD_NUMBER: _ClassVar[int]
    name: str
    insecure: bool
    def __init__(self, name: _Optional[str] = ..., insecure: _Optional[bool] = ...) -> None: ...

class GetManifestRequest(_message.Message):
    __slots__ = ("repository", "reference", "host", "name")
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    repository: str
    reference: str
    host: str
    name: str
    def __init__(self, repository: _Optional[str] = ..., reference: _Optional[str] = ..., host: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class GetManifestResponse(_message.Message):
    __slots__ = ("content", "media_type", "digest")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    media_type: str
    digest: str
    def __init__(self, content: _Optional[bytes] = ..., media_type: _Optional[str] = ..., digest: _Optional[str] = ...) -> None: ...

class PutManifestRequest(_message.Message):
    __slots__ = ("repository", "reference", "content", "host", "name")
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    repository: str
    reference: str
    content: bytes
    host: str
    name: str
    def __init__(self, repository: _Optional[str] = ..., reference: _Optional[str] = ..., content: _Optional[bytes] = ..., host: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class PutManifestResponse(_message.Message):
    __slots__ = ("digest",)
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    digest: str
    def __init__(self, digest: _Optional[str] = ...) -> None: ...

class RescanRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RescanResponse(_message.Message):
    __slots__ = ("indexed", "removed", "exported", "skipped")
    class SkippedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    INDEXED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    EXPORTED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    indexed: _containers.RepeatedScalarFieldContainer[str]
    removed: _containers.RepeatedScalarFieldContainer[str]
    exported: _containers.RepeatedScalarFieldContainer[str]
    skipped: _containers.ScalarMap[str, str]
    def __init__(self, indexed: _Optional[_Iterable[str]] = ..., removed: _Optional[_Iterable[str]] = ..., exported: _Optional[_Iterable[str]] = ..., skipped: _Optional[_Mapping[str, str]] = ...) -> None: ...

class VerifyBlobsRequest(_message.Message):
    __slots__ = ("name", "repair")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REPAIR_FIELD_NUMBER: _ClassVar[int]
    name: str
    repair: bool
    def __init__(self, name: _Optional[str] = ..., repair: _Optional[bool] = ...) -> None: ...

class BlobVerification(_message.Message):
    __slots__ = ("digest", "state", "size", "actual_digest", "models", "quarantined")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[BlobVerification.State]
        STATE_HASHING: _ClassVar[BlobVerification.State]
        STATE_SOUND: _ClassVar[BlobVerification.State]
        STATE_CORRUPT: _ClassVar[BlobVerification.State]
        STATE_MISSING: _ClassVar[BlobVerification.State]
    STATE_UNSPECIFIED: BlobVerification.State
    STATE_HASHING: BlobVerification.State
    STATE_SOUND: BlobVerification.State
    STATE_CORRUPT: BlobVerification.State
    STATE_MISSING: BlobVerification.State
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    QUARANTINED_FIELD_NUMBER: _ClassVar[int]
    digest: str
    state: BlobVerification.State
    size: int
    actual_digest: str
    models: _containers.RepeatedScalarFieldContainer[str]
    quarantined: bool
    def __init__(self, digest: _Optional[str] = ..., state: _Optional[_Union[BlobVerification.State, str]] = ..., size: _Optional[int] = ..., actual_digest: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., quarantined: _Optional[bool] = ...) -> None: ...

class ApiKey(_message.Message):
    __slots__ = ("name", "scopes", "created_at", "last_used_at", "expires_at", "requests_per_minute", "max_concurrent")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_FIELD_NUMBER: _ClassVar[int]
    name: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    last_used_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    requests_per_minute: int
    max_concurrent: int
    def __init__(self, name: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_used_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., requests_per_minute: _Optional[int] = ..., max_concurrent: _Optional[int] = ...) -> None: ...

class CreateKeyRequest(_message.Message):
    __slots__ = ("name", "scopes", "key_hash", "expires_at", "requests_per_minute", "max_concurrent")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    KEY_HASH_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_FIELD_NUMBER: _ClassVar[int]
    name: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    key_hash: str
    expires_at: _timestamp_pb2.Timestamp
    requests_per_minute: int
    max_concurrent: int
    def __init__(self, name: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ..., key_hash: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., requests_per_minute: _Optional[int] = ..., max_concurrent: _Optional[int] = ...) -> None: ...

class CreateKeyResponse(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: ApiKey
    def __init__(self, key: _Optional[_Union[ApiKey, _Mapping]] = ...) -> None: ...

class ListKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[ApiKey]
    def __init__(self, keys: _Optional[_Iterable[_Union[ApiKey, _Mapping]]] = ...) -> None: ...

class RevokeKeyRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RevokeKeyResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CheckKeyRequest(_message.Message):
    __slots__ = ("key_hash",)
    KEY_HASH_FIELD_NUMBER: _ClassVar[int]
    key_hash: str
    def __init__(self, key_hash: _Optional[str] = ...) -> None: ...

class CheckKeyResponse(_message.Message):
    __slots__ = ("keys_exist", "status", "key")
    KEYS_EXIST_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    keys_exist: bool
    status: KeyStatus
    key: ApiKey
    def __init__(self, keys_exist: _Optional[bool] = ..., status: _Optional[_Union[KeyStatus, str]] = ..., key: _Optional[_Union[ApiKey, _Mapping]] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("schema_revision", "schema_head", "models", "blobs", "blob_bytes")
    SCHEMA_REVISION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_HEAD_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    BLOB_BYTES_FIELD_NUMBER: _ClassVar[int]
    schema_revision: str
    schema_head: str
    models: int
    blobs: int
    blob_bytes: int
    def __init__(self, schema_revision: _Optional[str] = ..., schema_head: _Optional[str] = ..., models: _Optional[int] = ..., blobs: _Optional[int] = ..., blob_bytes: _Optional[int] = ...) -> None: ...

class ReadBlobRequest(_message.Message):
    __slots__ = ("digest", "offset", "length")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    digest: str
    offset: int
    length: int
    def __init__(self, digest: _Optional[str] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class ReadBlobResponse(_message.Message):
    __slots__ = ("chunk", "size")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    size: int
    def __init__(self, chunk: _Optional[bytes] = ..., size: _Optional[int] = ...) -> None: ...
