"""`imgtrace record`: the recording reverse proxy on the command line."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

from traces import UsageError

from .._headlimit import check_max_header_size, uvicorn_http
from ._shared import (
    Command,
    add_force_flag,
    add_json_flag,
    add_list,
    add_number,
    parse_duration,
    parse_size,
    refuse_existing,
    write_json,
)

__all__ = ["parse_listen", "register"]

USER_KEY_ENV = "IMGTRACE_USER_KEY"

DESCRIPTION = (
    "Forward every request to --upstream and record image-edit exchanges into a trace. "
    "The recording (parsing, hashing, writing) runs in a process of its own. "
    "Recording never fails a request: if the disk or the recording process cannot keep up, "
    "bodies or records are dropped and counted. Stop with Ctrl-C or SIGTERM. "
    "See docs/recording.md."
)

# (flag, default, help) of the flags that take a SIZE or a DURATION.
_Measures = tuple[tuple[str, str | None, str], ...]
_SIZES: _Measures = (
    (
        "--max-body",
        "64M",
        "record bodies up to SIZE (default 64M); larger ones are forwarded in full and recorded "
        "without the body, and counted",
    ),
    (
        "--max-backlog",
        "512M",
        "the most memory the proxy holds for exchanges waiting for the recording process "
        "(default 512M); past it, exchanges are recorded without their bodies, and counted: "
        "forwarding never waits for the recording",
    ),
    (
        "--max-header-size",
        "64K",
        "longest request head (request line and headers) forwarded (default 64K); a longer one "
        "is answered 431, not forwarded, and recorded without its headers past the limit",
    ),
    (
        "--rotate-size",
        None,
        "start a new file when the current one reaches about SIZE (e.g. 1G)",
    ),
)
_ROTATE_TIME: _Measures = (
    ("--rotate-time", None, "start a new file every DURATION (e.g. 1h, 30m)"),
)
_DURATIONS: _Measures = (
    (
        "--upstream-timeout",
        "600s",
        "the longest the upstream may stay silent (connect, take the upload, send the next "
        "bytes) before the client gets a 504 (default 600s)",
    ),
    (
        "--flush-interval",
        "0.5s",
        "write recorded requests to disk at least this often; a crash loses at most about this "
        "much (default 0.5s)",
    ),
    (
        "--shutdown-timeout",
        "30s",
        "on Ctrl-C/SIGTERM, wait this long for requests in flight (default 30s)",
    ),
)


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` or `PORT` → (host, port); warns loudly unless loopback."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]") if host.startswith("[") else host
    host = host or "127.0.0.1"  # `:8080` and `8080` keep the safe default
    if not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise UsageError(f"--listen takes HOST:PORT (e.g. 127.0.0.1:8080), not {text!r}")
    from recorder import exposure_warning

    warning = exposure_warning(host, text)
    if warning is not None:
        print(warning, file=sys.stderr, flush=True)
    return host, int(port_text)


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else happens, so a busy port is exit 2."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (is the port in use?)"
        ) from None


def _check_upstream(url: str) -> str:
    import httpx

    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UsageError(f"--upstream {url!r} is not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(
            f"--upstream takes an http:// or https:// URL with a host "
            f"(e.g. http://127.0.0.1:30000), not {url!r}"
        )
    if parsed.userinfo:
        raise UsageError(
            "--upstream must not hold credentials: the proxy forwards each client's own "
            "Authorization header"
        )
    return url


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `record`."""
    parser.add_argument(
        "--upstream",
        required=True,
        metavar="URL",
        help="base URL of the real server, e.g. http://127.0.0.1:30000",
    )
    parser.add_argument(
        "--listen",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="address to listen on (default 127.0.0.1:8080; any address but loopback warns loudly)",
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="trace file to write (with rotation: prod.imgtrace, then prod.2.imgtrace, ...)",
    )
    add_force_flag(parser, "overwrite FILE (and old rotated parts) if they exist")
    parser.add_argument(
        "--paths",
        action="append",
        metavar="PATH[,PATH...]",
        help="paths to record, exact or shell patterns like '/v1/images/*'; "
        "repeatable (default /v1/images/edits,/v1/images/generations); all "
        "other paths are forwarded without recording",
    )
    add_number(
        parser,
        "--sample",
        float,
        "FRACTION",
        "record this fraction of matching requests, chosen by a hash of "
        "the request's content (default 1)",
        default=1.0,
    )
    _add_measures(parser, "SIZE", _SIZES)
    _add_measures(parser, "DURATION", _ROTATE_TIME)
    add_list(parser, "--redact-header", "NAME", "also redact this header's value (repeatable)")
    add_list(
        parser,
        "--keep-header",
        "NAME",
        "keep this header's value although it is redacted by default (repeatable)",
    )
    parser.add_argument(
        "--user-key",
        metavar="KEY",
        help="secret key for pseudonymising the form field 'user' (default: "
        f"${USER_KEY_ENV}; without either, a random key per recording, so "
        "pseudonyms only match within one recording)",
    )
    _add_measures(parser, "DURATION", _DURATIONS)
    add_json_flag(parser, "write the recording's counts as JSON to FILE ('-' for stdout) at exit")


def _add_measures(parser: argparse.ArgumentParser, metavar: str, flags: _Measures) -> None:
    """Flags that take a SIZE or a DURATION, read by `parse_size`/`parse_duration` in `run`."""
    for flag, default, text in flags:
        parser.add_argument(flag, default=default, metavar=metavar, help=text)


def _options(args: argparse.Namespace) -> Any:
    from recorder import RecordOptions

    paths = tuple(p.strip() for group in (args.paths or []) for p in group.split(",") if p.strip())
    key_text = args.user_key if args.user_key is not None else os.environ.get(USER_KEY_ENV)
    if key_text is not None and not key_text:
        raise UsageError(f"--user-key / ${USER_KEY_ENV} must not be empty")
    return RecordOptions(
        paths=paths or RecordOptions.paths,
        sample=args.sample,
        max_body=parse_size(args.max_body, "--max-body"),
        user_key=key_text.encode("utf-8") if key_text else None,
        redact_headers=tuple(args.redact_header),
        keep_headers=tuple(args.keep_header),
        rotate_size=parse_size(args.rotate_size, "--rotate-size") if args.rotate_size else None,
        rotate_time=(
            parse_duration(args.rotate_time, "--rotate-time") if args.rotate_time else None
        ),
        flush_interval=parse_duration(args.flush_interval, "--flush-interval"),
        max_queue_bytes=parse_size(args.max_backlog, "--max-backlog"),
    )


def run(args: argparse.Namespace) -> int:
    """Validate everything, then serve until SIGINT/SIGTERM; counts go to stderr at exit."""
    upstream = _check_upstream(args.upstream)
    timeout = parse_duration(args.upstream_timeout, "--upstream-timeout")
    grace = parse_duration(args.shutdown_timeout, "--shutdown-timeout")
    options = _options(args)
    max_header_size = check_max_header_size(parse_size(args.max_header_size, "--max-header-size"))
    refuse_existing(args.json, args.force)
    host, port = parse_listen(args.listen)

    import anyio
    import uvicorn

    from recorder import RecorderProcess, RecordingProxy, check_output, listen_url

    check_output(Path(args.output), options, args.force)
    listener = _bind(host, port)
    port = listener.getsockname()[1]  # the port it got, when asked for any (port 0)
    try:
        # The recording runs in a process of its own; this one only forwards bytes.
        recorder = RecorderProcess(
            args.output,
            source="proxy",
            options=options,
            force=args.force,
            metadata={"upstream": upstream, "listen": f"{host}:{port}"},
        )
    except BaseException:
        listener.close()
        raise
    proxy = RecordingProxy(upstream, recorder, timeout=timeout)
    config = uvicorn.Config(
        proxy,
        host=host,
        port=port,
        **uvicorn_http(max_header_size),
        ws="none",
        lifespan="on",
        log_level="warning",
        access_log=False,
        # The proxy appends the real peer to X-Forwarded-For; it must not trust the header.
        proxy_headers=False,
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=int(grace) or 1,
    )
    server = uvicorn.Server(config)
    stop_signals: list[int] = []

    def remember(signum: int, frame: FrameType | None) -> None:
        # uvicorn re-raises the signal that stopped it; ours only notes it, so the recording
        # can still be closed cleanly afterwards. One that comes before uvicorn has put in its
        # own handlers (right after the line below) stops it as soon as it has started.
        stop_signals.append(signum)
        server.should_exit = True

    previous = {sig: signal.signal(sig, remember) for sig in (signal.SIGINT, signal.SIGTERM)}
    print(
        f"imgtrace: recording {listen_url(host, port)} -> {upstream} into {args.output} "
        f"(paths {', '.join(options.paths)}); stop with Ctrl-C",
        file=sys.stderr,
        flush=True,
    )
    try:
        anyio.run(server.serve, [listener])
    finally:
        listener.close()
        stats = recorder.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"imgtrace: {stats.summary()}", file=sys.stderr, flush=True)
    write_json(args.json, {**asdict(stats), "dropped": stats.dropped}, compact=True)
    return 0


register = Command(
    "record", "record live traffic through a reverse proxy", DESCRIPTION, add_arguments, run
)
