"""What synthesis, the importers and the exporter share: errors, atomic outputs, counting."""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import msgspec

from traces import Header, OutputExists, Request, TraceWriter, UsageError, sniff_media_type

from ._errors import RecorderError

__all__ = [
    "DETERMINISTIC_FLUSH_INTERVAL",
    "JsonLine",
    "ImportOutput",
    "ImportStats",
    "InputError",
    "atomic_path",
    "atomic_text",
    "check_image",
    "decode_error",
    "empty_reason",
    "finish_import",
    "import_header",
    "import_output",
    "decode_data_url",
    "open_input",
    "open_trace_output",
    "read_line",
    "scan_jsonl",
    "stable_boundary",
]

# The writer flushes frames on a timer by default, which makes frame boundaries (and therefore the
# compressed bytes) depend on how fast the machine is. Sources flush by record count only, so the
# same input gives the same file.
DETERMINISTIC_FLUSH_INTERVAL = 1e7


class InputError(RecorderError):
    """Raised when an input file cannot be used; the message names the file and line or entry."""

    def __init__(self, path: str | os.PathLike[str], where: int | str | None, problem: str) -> None:
        self.path = os.fspath(path)
        self.where = where
        self.problem = problem
        if where is None:
            location = self.path
        elif isinstance(where, int):
            location = f"{self.path}:{where}"  # a line number, as compilers print it
        else:
            location = f"{self.path}: {where}"
        super().__init__(f"{location}: {problem}")


class ImportStats(msgspec.Struct, kw_only=True):
    """What an import or export did, for the summary line and `--json`."""

    source: str
    output: str
    requests: int = 0
    skipped_not_edit: int = 0
    skipped_warmup: int = 0
    masks_dropped: int = 0
    models_left_out: int = 0
    """Export: requests whose `model` was not written (AIPerf then sends its --model)."""
    skipped_bad: int = 0
    responses: int = 0
    images: int = 0
    """Reference images in the requests written (inputs, each upload counted)."""
    output_images: int = 0
    """Images in the recorded responses that were imported."""
    problems: list[str] = []
    """The first few skipped entries, as `file:line: problem`."""
    warnings: list[str] = []
    """Where the result is not exactly what the other tool sent or will send."""

    def skip_or_raise(self, error: InputError, skip: bool) -> None:
        """Count `error` as a skipped entry when `skip` (--skip-bad), else raise it."""
        if not skip:
            raise error
        self.skipped_bad += 1
        if len(self.problems) < 20:
            self.problems.append(str(error))

    def summary(self) -> str:
        return f"{self.source} -> {self.output}: {self.counts()}"

    def counts(self) -> str:
        """`12 requests, 3 entries skipped (not image edits), ...`: the counts that are not 0."""
        parts = [f"{self.requests} requests"]
        for name, text in _COUNTED:
            count = getattr(self, name)
            if count:
                parts.append(text.format(count))
        return ", ".join(parts)


_COUNTED = (
    ("images", "{} images"),
    ("responses", "{} with responses"),
    ("skipped_not_edit", "{} entries skipped (not image edits)"),
    ("skipped_warmup", "{} warmup requests skipped"),
    ("skipped_bad", "{} bad entries skipped"),
    ("masks_dropped", "{} masks dropped"),
    (
        "models_left_out",
        "model left out of {} requests (AIPerf sends its --model; --keep-model keeps it)",
    ),
)
"""The counts of `ImportStats.counts` after the requests, in order, each with its wording."""


def refuse_existing(path: Path, force: bool) -> None:
    if path.is_dir():
        raise UsageError(f"{path} is a directory: give a file name for the output")
    if path.exists() and not force:
        raise OutputExists(path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], force: bool) -> Iterator[Path]:
    """A temporary path beside `path` that replaces it only if the block succeeds.

    An existing output is refused unless `force`; on any error the existing file is untouched and
    the temporary file is removed, so a failed import never leaves half a trace behind.
    """
    target = Path(path)
    refuse_existing(target, force)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{parent} does not exist: create the output directory first")
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=parent)
    os.close(fd)
    temporary = Path(name)
    # mkstemp creates the file private (0600); give the output the usual umask permissions.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


@contextlib.contextmanager
def atomic_text(path: str, force: bool) -> Iterator[IO[str]]:
    """A text file to write that appears at `path` only on success; `-` is standard output."""
    import sys

    if path == "-":
        yield sys.stdout
        return
    with atomic_path(path, force) as temporary, open(temporary, "w", encoding="utf-8") as file:
        yield file


@contextlib.contextmanager
def open_trace_output(path: Path, header: Header) -> Iterator[TraceWriter]:
    """A TraceWriter on a temporary path (from `atomic_path`) with deterministic framing."""
    writer = TraceWriter(path, header, force=True, flush_interval=DETERMINISTIC_FLUSH_INTERVAL)
    try:
        yield writer
    except BaseException:
        writer.abandon()
        raise
    writer.close()


_DATA_URL = re.compile(r"data:([^;,]*)((?:;[^;,]*)*?),", re.IGNORECASE)


def decode_data_url(url: str) -> tuple[str | None, bytes]:
    """(declared media type, bytes) of a `data:` URL; ValueError if it is not a valid one."""
    match = _DATA_URL.match(url)
    if match is None:
        raise ValueError("not a data URL (expected data:<type>;base64,<data>)")
    payload = url[match.end() :]
    media = match.group(1).strip().lower() or None
    if ";base64" in match.group(2).lower():
        try:
            return media, base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the data URL's base64 payload does not decode") from None
    from urllib.parse import unquote_to_bytes

    return media, unquote_to_bytes(payload)


def check_image(
    data: bytes, path: str | os.PathLike[str], where: int | str | None, what: str
) -> str:
    """The media type of `data`, or an InputError if it is not an image (sniffed, not trusted)."""
    media = sniff_media_type(data)
    if not media.startswith("image/"):
        if not data:
            problem = f"{what} is empty"
        else:
            problem = f"{what} is not an image (its bytes look like {media})"
        raise InputError(path, where, problem)
    return media


class JsonLine(msgspec.Struct, frozen=True):
    """Where a non-blank line of a JSON-lines file is: 1-based number, byte offset and length."""

    number: int
    offset: int
    length: int


def open_input(path: str | os.PathLike[str], what: str) -> IO[bytes]:
    """`path` opened for reading, or an InputError that says why not (`what` it should be)."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise InputError(path, None, "no such file") from None
    except IsADirectoryError:
        raise InputError(path, None, f"is a directory, not {what}") from None
    except OSError as exc:
        raise InputError(path, None, f"cannot read: {exc.strerror}") from None


def scan_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[JsonLine, bytes]]:
    """Every non-blank line of a JSON-lines file with its position; InputError if unreadable."""
    with open_input(path, "a JSON-lines file") as file:
        offset = 0
        for number, line in enumerate(file, start=1):
            if line.strip():
                yield JsonLine(number, offset, len(line)), line
            offset += len(line)


def read_line(file: IO[bytes], line: JsonLine) -> bytes:
    """The bytes of a line found by `scan_jsonl`, read again from an open file."""
    file.seek(line.offset)
    return file.read(line.length)


def stable_boundary(key: str) -> str:
    """A multipart boundary derived from `key`, so that an import gives the same file twice."""
    import hashlib

    return "imgtrace-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def decode_error(exc: msgspec.DecodeError) -> str:
    """msgspec's message, phrased for a user who wrote or exported the file."""
    text = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        return f"unexpected content: {text}"
    if text == "Input data was truncated":
        return "not valid JSON (the line ends in the middle of a value)"
    return f"not valid JSON ({text})"


def empty_reason(stats: ImportStats, what: str) -> str:
    """Why an input gave nothing to import: all of it skipped, or nothing in it at all."""
    if stats.skipped_bad or stats.skipped_not_edit or stats.skipped_warmup:
        return f"no usable {what}: {stats.counts()}"
    return f"the file is empty: it holds no {what}"


def import_header(kind: str, path: Path, start_wall_ns: int | None = None, **about: Any) -> Header:
    """The header of a trace imported from `path`: source `import:KIND`, created now."""
    return Header(
        source=f"import:{kind}",
        created_ns=time.time_ns(),
        start_wall_ns=start_wall_ns,
        metadata={"import": {"format": kind, "file": path.name, **about}},
    )


class ImportOutput:
    """The trace an import writes: `add` writes each request an entry gives (`import_output`)."""

    def __init__(self, writer: TraceWriter, stats: ImportStats, skip_bad: bool) -> None:
        self.writer = writer
        self.stats = stats
        self.skip_bad = skip_bad

    def add(self, build: Callable[..., Request | None], *args: Any) -> None:
        """Write the request `build(*args)` makes of an entry (None: it has none); a bad entry
        (`InputError`) is skipped and counted with --skip-bad, else raised."""
        try:
            request = build(*args)
        except InputError as error:
            self.stats.skip_or_raise(error, self.skip_bad)
            return
        if request is not None:
            self.writer.write(request)
            self.stats.requests += 1


@contextlib.contextmanager
def import_output(
    output: str | os.PathLike[str],
    force: bool,
    header: Header,
    stats: ImportStats,
    skip_bad: bool,
) -> Iterator[ImportOutput]:
    """The trace an import of `stats.source` writes, in place only once it is complete.

    Refused when it holds no request (`finish_import`); on any error nothing is left behind.
    """
    with atomic_path(output, force) as temporary, open_trace_output(temporary, header) as writer:
        yield ImportOutput(writer, stats, skip_bad)
        finish_import(writer, stats, Path(stats.source))


def finish_import(writer: TraceWriter, stats: ImportStats, path: Path) -> None:
    """Refuse an import that produced no request; else note the counts in the trace."""
    if stats.requests == 0:
        raise InputError(path, None, empty_reason(stats, "image-edit requests"))
    writer.note(
        imported={
            "requests": stats.requests,
            "responses": stats.responses,
            "skipped_not_edit": stats.skipped_not_edit,
            "skipped_warmup": stats.skipped_warmup,
            "skipped_bad": stats.skipped_bad,
        }
    )
