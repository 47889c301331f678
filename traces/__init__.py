"""The core of imgtrace: the trace file format, its records, and the multipart codec.

Everything else (recorder, replayer, analyzer) builds on this package and on nothing of each
other. See docs/trace-format.md for the specification.
"""

from ._arrivals import ArrivalKind, ArrivalProcess, GapSource
from ._body import (
    BlobSink,
    BlobSource,
    body_from_bytes,
    body_from_parts,
    encode_body,
    form_parts,
    restore_images,
    strip_images,
)
from ._classes import CLASS_FIELDS, MAX_CLASSES, class_labels, request_classes, request_features
from ._errors import (
    MissingBlobError,
    MultipartError,
    OutputExists,
    TraceError,
    TraceFormatError,
    TraceRecoveryWarning,
    UnsupportedTraceVersion,
    UsageError,
)
from ._failures import ERROR_KINDS, ErrorKind, error_kind, error_kind_named
from ._framing import BlobLocation, FileIndex
from ._head import DEFAULT_MAX_HEADER_SIZE, HEAD_TOO_LARGE
from ._http1_errors import Http1Error, Http1Timeout
from ._http1_pool import Http1Pool, Http1Response
from ._inputs import IMAGE_FIELDS, MASK_FIELDS, body_blobs, input_images, input_masks
from ._inspect import TraceSummary, cat_lines, extract_images, format_summary, summarize
from ._jsonimages import is_json_media, json_envelope, strip_images_from_json
from ._lag import (
    LAG_ABSOLUTE_NS,
    LAG_FLOOR_NS,
    LAG_SHARE_OF_MEDIAN,
    lag_advice,
    lag_matters,
    lag_rule_text,
)
from ._media import extension_for, sniff_media_type
from ._merge import MergeResult, ShardInfo, merge_files, shard_metadata, shard_of
from ._multipart import (
    FormPartData,
    StreamingFormParser,
    boundary_of,
    encode_multipart,
    new_boundary,
    parse_multipart,
)
from ._part import copy_part
from ._quantile import Ascending, quantile, quantile_index
from ._reader import Damage, RecordKind, TraceReader
from ._redact import (
    DEFAULT_REDACTED_HEADERS,
    PLACEHOLDERS,
    REDACTED,
    SECRET_QUERY_PARAMS,
    Redaction,
    internal_address,
    redact_envelope,
    redact_query,
    secret_header_name,
)
from ._repeats import Reproduction, count_reproductions, failure_label, reproductions
from ._responses import INVALID_RESPONSE, invalid_response
from ._schema import (
    FORMAT_VERSION,
    READABLE_VERSIONS,
    Blob,
    Body,
    ErrorInfo,
    FilePart,
    FormPart,
    Header,
    Interleave,
    JsonBody,
    MeasuredSend,
    MultipartBody,
    Note,
    Outcome,
    RawBody,
    Record,
    Request,
    Response,
    TextField,
)
from ._units import parse_byte_size
from ._version import __version__
from ._view import ExchangeView, view_exchange
from ._writer import TraceWriter

__all__ = [
    "CLASS_FIELDS",
    "DEFAULT_MAX_HEADER_SIZE",
    "DEFAULT_REDACTED_HEADERS",
    "ERROR_KINDS",
    "FORMAT_VERSION",
    "HEAD_TOO_LARGE",
    "IMAGE_FIELDS",
    "INVALID_RESPONSE",
    "LAG_ABSOLUTE_NS",
    "LAG_FLOOR_NS",
    "LAG_SHARE_OF_MEDIAN",
    "MASK_FIELDS",
    "MAX_CLASSES",
    "PLACEHOLDERS",
    "READABLE_VERSIONS",
    "REDACTED",
    "SECRET_QUERY_PARAMS",
    "ArrivalKind",
    "ArrivalProcess",
    "Ascending",
    "Blob",
    "BlobLocation",
    "BlobSink",
    "BlobSource",
    "Body",
    "Damage",
    "ErrorInfo",
    "ErrorKind",
    "ExchangeView",
    "FileIndex",
    "FilePart",
    "FormPart",
    "FormPartData",
    "GapSource",
    "Header",
    "Http1Error",
    "Http1Pool",
    "Http1Response",
    "Http1Timeout",
    "Interleave",
    "JsonBody",
    "MeasuredSend",
    "MergeResult",
    "MissingBlobError",
    "MultipartBody",
    "MultipartError",
    "Note",
    "Outcome",
    "OutputExists",
    "RawBody",
    "Record",
    "RecordKind",
    "Redaction",
    "Reproduction",
    "Request",
    "Response",
    "ShardInfo",
    "StreamingFormParser",
    "TextField",
    "TraceError",
    "TraceFormatError",
    "TraceReader",
    "TraceRecoveryWarning",
    "TraceSummary",
    "TraceWriter",
    "UnsupportedTraceVersion",
    "UsageError",
    "__version__",
    "body_blobs",
    "body_from_bytes",
    "body_from_parts",
    "boundary_of",
    "cat_lines",
    "class_labels",
    "copy_part",
    "count_reproductions",
    "encode_body",
    "encode_multipart",
    "error_kind",
    "error_kind_named",
    "extension_for",
    "extract_images",
    "failure_label",
    "form_parts",
    "format_summary",
    "input_images",
    "input_masks",
    "internal_address",
    "invalid_response",
    "is_json_media",
    "json_envelope",
    "lag_advice",
    "lag_matters",
    "lag_rule_text",
    "merge_files",
    "new_boundary",
    "parse_byte_size",
    "parse_multipart",
    "quantile",
    "quantile_index",
    "redact_envelope",
    "redact_query",
    "reproductions",
    "request_classes",
    "request_features",
    "restore_images",
    "secret_header_name",
    "shard_metadata",
    "shard_of",
    "sniff_media_type",
    "strip_images",
    "strip_images_from_json",
    "summarize",
    "view_exchange",
]
