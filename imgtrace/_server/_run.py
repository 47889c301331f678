"""Running the reference server in the foreground on uvicorn."""

from __future__ import annotations

import signal
import socket
import sys
from types import FrameType
from typing import TYPE_CHECKING

from traces import UsageError

from ._config import ServerConfig

if TYPE_CHECKING:
    from ._app import ReferenceApp

__all__ = ["build_app", "serve"]

GRACEFUL_SHUTDOWN_S = 5.0


def build_app(config: ServerConfig) -> ReferenceApp:
    """The ASGI application, for embedding in another ASGI server."""
    from ._app import ReferenceApp

    return ReferenceApp(config)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on connections whose socket
    # says TCP. With Nagle on, a response's body waited for the client's delayed ACK of its
    # headers, adding 40 ms to about every other response, differently in every run.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port/--host"
        ) from None
    sock.set_inheritable(True)
    # Listening from here on, so a client told the port may connect before uvicorn starts.
    sock.listen(2048)
    return sock


def serve(config: ServerConfig) -> int:
    """Serve until SIGINT or SIGTERM; prints one readiness line on stdout; returns 0."""
    import anyio
    import uvicorn

    from ._app import ReferenceApp

    sock = _listen(config.host, config.port)
    port = sock.getsockname()[1]
    host = f"[{config.host}]" if ":" in config.host else config.host
    # Said at once, before the warm-up, so a caller of --port 0 can watch /health turn ready.
    print(
        f"imgtrace serve: listening on http://{host}:{port}, warming up",
        file=sys.stderr,
        flush=True,
    )

    def announce() -> None:
        speed = "inf" if config.speed == float("inf") else f"{config.speed:g}"
        line = (
            f"imgtrace serve: ready on http://{host}:{port} (model {config.model}, "
            f"{config.gpus} GPU(s), max batch {config.max_batch}, speed {speed})"
        )
        try:
            print(line, flush=True)
        except OSError:
            pass  # whoever started us stopped reading stdout; serving matters more

    app = ReferenceApp(config, on_ready=announce)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # Unlike uvicorn's own handler, do not re-raise the signal after the graceful
            # shutdown: a requested stop is a clean exit (status 0).
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True
            app.begin_shutdown()

    from .._headlimit import uvicorn_http

    uv_config = uvicorn.Config(
        app,
        **uvicorn_http(config.max_header_size),
        lifespan="on",
        log_level=config.log_level,
        access_log=config.access_log,
        timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN_S),
        timeout_keep_alive=30,
        ws="none",
        server_header=False,
    )
    server = Server(uv_config)
    app.is_listening = lambda: server.started
    try:
        anyio.run(server.serve, [sock])
    finally:
        sock.close()
    if not server.started:
        print("imgtrace serve: the server failed to start (see the log above)", file=sys.stderr)
        return 1
    print("imgtrace serve: stopped", file=sys.stderr, flush=True)
    return 0
