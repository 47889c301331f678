"""The core of imgtrace: the trace file format, its records, and the multipart codec.

Everything else (recorder, replayer, analyzer) builds on this package and on nothing of each
other. See docs/trace-format.md for the specification.
"""

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
from ._framing import BlobLocation, FileIndex
from ._head import DEFAULT_MAX_HEADER_SIZE, HEAD_TOO_LARGE
from ._inspect import TraceSummary, cat_lines, extract_images, format_summary, summarize
from ._jsonimages import strip_images_from_json
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
from ._reader import Damage, TraceReader
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
    MultipartBody,
    Note,
    Outcome,
    RawBody,
    Record,
    Request,
    Response,
    TextField,
)
from ._version import __version__
from ._writer import TraceWriter

__all__ = [
    "DEFAULT_MAX_HEADER_SIZE",
    "DEFAULT_REDACTED_HEADERS",
    "FORMAT_VERSION",
    "HEAD_TOO_LARGE",
    "PLACEHOLDERS",
    "READABLE_VERSIONS",
    "REDACTED",
    "SECRET_QUERY_PARAMS",
    "Blob",
    "BlobLocation",
    "BlobSink",
    "BlobSource",
    "Body",
    "Damage",
    "ErrorInfo",
    "FileIndex",
    "FilePart",
    "FormPart",
    "FormPartData",
    "Header",
    "Interleave",
    "JsonBody",
    "MergeResult",
    "MissingBlobError",
    "MultipartBody",
    "MultipartError",
    "Note",
    "Outcome",
    "OutputExists",
    "RawBody",
    "Record",
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
    "body_from_bytes",
    "body_from_parts",
    "boundary_of",
    "cat_lines",
    "copy_part",
    "count_reproductions",
    "encode_body",
    "encode_multipart",
    "extension_for",
    "extract_images",
    "failure_label",
    "form_parts",
    "format_summary",
    "internal_address",
    "merge_files",
    "new_boundary",
    "parse_multipart",
    "redact_envelope",
    "redact_query",
    "reproductions",
    "restore_images",
    "secret_header_name",
    "shard_metadata",
    "shard_of",
    "sniff_media_type",
    "strip_images",
    "strip_images_from_json",
    "summarize",
]
