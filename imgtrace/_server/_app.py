"""The reference server as a raw ASGI application (served by uvicorn; no web framework).

Routes: GET /health, /v1/models, /v1/models/{id}, /metrics; POST /v1/images/edits (multipart)
and /v1/images/generations (JSON). Every error answers in the OpenAI shape; an unexpected one is
logged here and answered as a plain 500, never as a traceback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import anyio
import anyio.to_thread
import msgspec

from traces import HEAD_TOO_LARGE

from ._config import ServerConfig
from ._edit import Renderer, RenderInputs
from ._engine import Engine, Job, QueueFull
from ._errors import ApiError
from ._form import ClientGone, TrackedReceive, read_body, read_form
from ._metrics import CONTENT_TYPE, Metrics
from ._params import EditRequest, parse_edit_form, parse_generation_json
from ._planted import RESET_ROUTE, Planted
from ._store import ImageStore

__all__ = ["ReferenceApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger("imgtrace.serve")
_encoder = msgspec.json.Encoder()
_QUALITY = {"auto": "high", "standard": "medium", "hd": "high"}
EDITS = "/v1/images/edits"
GENERATIONS = "/v1/images/generations"
CLIENT_CLOSED = 499  # nginx's code for "client closed the request", only in /metrics
CONTENT_PREFIX = "/v1/images/"
CONTENT_ROUTE = "/v1/images/{id}/content"
_MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


class ReferenceApp:
    """The ASGI app of `imgtrace serve`; `config` holds every knob."""

    def __init__(
        self,
        config: ServerConfig,
        on_ready: Callable[[], None] | None = None,
        is_listening: Callable[[], bool] = lambda: True,
    ) -> None:
        self.config = config
        self.on_ready = on_ready
        self.is_listening = is_listening
        self.metrics = Metrics()
        self.ready = False
        self.closing = False
        self.created = int(time.time())
        self._rng = random.Random(config.random_seed)
        self.renderer = Renderer(
            config.variant, config.noise, int(config.cache_mb * 1e6), config.random_seed
        )
        self.store = ImageStore(int(config.cache_mb * 1e6))
        self.engine: Engine | None = None
        self.planted = Planted(config)
        self._closed: anyio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            started = False

            async def tracked_send(message: Message) -> None:
                nonlocal started
                started = started or message["type"] == "http.response.start"
                await send(message)

            try:
                await self._http(scope, receive, tracked_send)
            except Exception:
                # Last line of defence: the log gets the traceback, the client the usual shape.
                logger.exception("unexpected error on %s %s", scope["method"], scope["path"])
                if not started:
                    await self._error(send, ApiError(500, "internal server error", code="internal"))

    # -- lifecycle ---------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        self._loop = asyncio.get_running_loop()
        self._closed = anyio.Event()
        self.engine = Engine(self.config, self.metrics, self._rng)
        async with anyio.create_task_group() as group:
            group.start_soon(self.engine.run)
            group.start_soon(self._warm_up)
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            self._close()
            group.cancel_scope.cancel()
        await send({"type": "lifespan.shutdown.complete"})

    async def _warm_up(self) -> None:
        """Load the image codecs for real, then "load the model" (--load-time)."""
        await anyio.to_thread.run_sync(_warm_codecs, self.renderer)
        await anyio.sleep(self.config.scaled(self.config.load_time))
        # uvicorn binds after lifespan startup and offers only a flag for it: poll it, so the
        # readiness line never comes before connections are accepted.
        while not self.is_listening():  # noqa: ASYNC110
            await anyio.sleep(0.01)
        self.ready = True
        if self.on_ready is not None:
            self.on_ready()

    def begin_shutdown(self) -> None:
        """Called from a signal handler: refuse new work, release hanging requests."""
        self.closing = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._close)

    def _close(self) -> None:
        self.closing = True
        if self._closed is not None:
            self._closed.set()

    # -- routing -----------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        refused = scope.get("extensions", {}).get(HEAD_TOO_LARGE)
        if refused is not None:
            await self._error(send, _head_too_large(refused["limit"]))
            self._count(path if path in (EDITS, GENERATIONS) else "other", 431, 0.0)
            return
        tracked = TrackedReceive(receive)
        if path in (EDITS, GENERATIONS):
            if method != "POST":
                await self._error(send, ApiError(405, f"use POST for {path}"), allow="POST")
                self._count(path, 405, 0.0)
                return
            await self._images(path, scope, tracked, send)
            return
        started = anyio.current_time()
        if path.startswith(CONTENT_PREFIX) and path.endswith("/content"):
            status = await self._content(path, method, scope, send)
            self._count(CONTENT_ROUTE, status, anyio.current_time() - started)
            return
        if path == RESET_ROUTE and method == "POST" and self.planted.active:
            self.planted.reset()
            await _respond(send, 200, _encoder.encode({"reset": True}))
            return
        status = await self._simple(path, method, send)
        self._count(path if status != 404 else "other", status, anyio.current_time() - started)

    async def _simple(self, path: str, method: str, send: Send) -> int:
        if method not in ("GET", "HEAD"):
            routes = ("/health", "/health_generate", "/metrics", "/v1/models")
            if path in routes or path.startswith("/v1/models/"):
                await self._error(send, ApiError(405, f"use GET for {path}"), allow="GET")
                return 405
        if path in ("/health", "/health_generate"):  # the second as SGLang has it
            if self.ready and not self.closing:
                await _respond(send, 200, _encoder.encode({"status": "ok"}))
                return 200
            state = "shutting down" if self.closing else "warming up"
            await self._error(send, ApiError(503, f"the server is {state}", code="not_ready"))
            return 503
        if path == "/metrics":
            body = self.metrics.render().encode()
            await _respond(send, 200, body, content_type=CONTENT_TYPE)
            return 200
        if path == "/v1/models":
            listing = {"object": "list", "data": [self._model()]}
            await _respond(send, 200, _encoder.encode(listing))
            return 200
        if path.startswith("/v1/models/"):
            name = path[len("/v1/models/") :]
            if name == self.config.model:
                await _respond(send, 200, _encoder.encode(self._model()))
                return 200
            error = ApiError(
                404, f"model {name!r} not found", param="model", code="model_not_found"
            )
            await self._error(send, error)
            return 404
        await self._error(send, ApiError(404, f"no route {method} {path}", code="not_found"))
        return 404

    async def _content(self, path: str, method: str, scope: Scope, send: Send) -> int:
        """GET /v1/images/{id}/content[?variant=i]: an image of a `url` response."""
        if method not in ("GET", "HEAD"):
            await self._error(send, ApiError(405, f"use GET for {path}"), allow="GET")
            return 405
        key = path[len(CONTENT_PREFIX) : -len("/content")]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        variant_text = query.get("variant", ["0"])[-1]
        found = self.store.get(key, int(variant_text)) if variant_text.isdigit() else None
        if found is None:
            message = (
                f"no image {key!r} (variant {variant_text}): unknown, or evicted from the "
                "server's store (it keeps --cache-mb of recent url responses)"
            )
            await self._error(send, ApiError(404, message, code="image_not_found"))
            return 404
        data, media_type = found
        await _respond(send, 200, data, content_type=media_type)
        return 200

    def _model(self) -> dict[str, object]:
        return {
            "id": self.config.model,
            "object": "model",
            "created": self.created,
            "owned_by": "imgtrace",
            "task_type": "TI2I",
        }

    # -- image routes ------------------------------------------------------------------------

    async def _images(self, path: str, scope: Scope, receive: TrackedReceive, send: Send) -> None:
        started = anyio.current_time()
        status = 500
        sent = False
        self.metrics.in_flight += 1
        try:
            request = await self._read_request(path, scope, receive)
            arrived = anyio.current_time()  # the simulated time's budget may absorb the decode
            inputs = await anyio.to_thread.run_sync(self.renderer.decode_inputs, request)
            # Queued requests keep only their reduced inputs, not the uploaded bytes.
            request = dataclasses.replace(request, images=(), mask=None)
            body, headers = await self._generate(
                request, inputs, receive, _base_url(scope), arrived
            )
            if body is None:
                status = CLIENT_CLOSED
                return
            status, sent = 200, True
            await _respond(send, 200, body, extra=headers)
        except ApiError as error:
            status = error.status
            if not sent:
                await self._error(send, error)
        except ClientGone:
            status = CLIENT_CLOSED
        except Exception:
            logger.exception("unexpected error while handling %s", path)
            status = 500
            if not sent:
                await self._error(send, ApiError(500, "internal server error", code="internal"))
        finally:
            self.metrics.in_flight -= 1
            self._count(path, status, anyio.current_time() - started)

    async def _read_request(self, path: str, scope: Scope, receive: TrackedReceive) -> EditRequest:
        if not self.ready or self.closing:
            state = "shutting down" if self.closing else "still loading the model"
            raise ApiError(
                503, f"the server is {state}; retry when GET /health answers 200", code="not_ready"
            )
        headers = _headers(scope)
        content_type = headers.get("content-type", "")
        length = _content_length(headers.get("content-length"))
        limit = self.config.max_body
        media = content_type.split(";")[0].strip().lower()
        if path == EDITS:
            if media != "multipart/form-data":
                raise ApiError(
                    415,
                    f"{EDITS} takes multipart/form-data, not {media or 'no Content-Type'}",
                    code="unsupported_media_type",
                )
            return parse_edit_form(await read_form(receive, content_type, length, limit))
        if media != "application/json":
            raise ApiError(
                415,
                f"{GENERATIONS} takes application/json, not {media or 'no Content-Type'}",
                code="unsupported_media_type",
            )
        raw = await read_body(receive, length, limit)
        try:
            decoded = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise ApiError(400, f"the body is not valid JSON: {exc}", code="invalid_json") from None
        return parse_generation_json(decoded)

    async def _generate(
        self,
        request: EditRequest,
        inputs: RenderInputs,
        receive: TrackedReceive,
        base_url: str,
        arrived: float,
    ) -> tuple[bytes | None, dict[str, str]]:
        assert self.engine is not None  # set at startup; requests wait for readiness
        draw = self._rng.random()
        slow = self._rng.random() < self.config.slow_rate
        if draw < self.config.timeout_rate:
            self.metrics.fault("timeout")
            await self._hang(receive)
            return None, {}
        width, height = inputs.size
        failing = draw < self.config.timeout_rate + self.config.error_rate
        images: list[bytes] = []

        async def render() -> None:
            # Inside the simulated time's budget, so cached outputs never answer sooner.
            rendered = planted.rendered(request)
            images.extend(await anyio.to_thread.run_sync(self.renderer.render, rendered, inputs))

        job = Job(width, height, request.steps, request.n, arrived, None if failing else render)
        planted = self.planted.arrive(request, job, masked=inputs.mask is not None)
        try:
            await self.engine.process(job)
        except QueueFull as full:
            raise ApiError(429, str(full), code="queue_full") from None
        if failing:
            self.metrics.fault("error")
            raise ApiError(
                500,
                "injected failure (--error-rate): the simulated GPU worker failed",
                code="injected_error",
            )
        planted.check()
        inference = job.finished - job.started
        if planted.slow_factor > 1:
            await anyio.sleep(inference * (planted.slow_factor - 1))
        if slow:
            self.metrics.fault("slow")
            await anyio.sleep(inference * (self.config.slow_factor - 1))
        self.metrics.images += len(images)
        body = self._response(request, inputs, images, inference, base_url)
        headers = {
            "x-imgtrace-queue-seconds": f"{job.queue_seconds:.6f}",
            "x-imgtrace-batch-images": str(job.batch_images),
            "x-imgtrace-executor": str(job.executor),
            "x-imgtrace-cold-start": "1" if job.cold_start else "0",
        }
        if slow:
            headers["x-imgtrace-fault"] = "slow"
        return body, headers

    async def _hang(self, receive: TrackedReceive) -> None:
        """--timeout-rate: never answer; end when the client leaves or the server stops."""
        assert self._closed is not None
        async with anyio.create_task_group() as group:

            async def until_disconnect() -> None:
                while not receive.disconnected:
                    await receive()
                group.cancel_scope.cancel()

            group.start_soon(until_disconnect)
            await self._closed.wait()
            group.cancel_scope.cancel()
        if not receive.disconnected:
            raise ApiError(503, "the server is shutting down", code="shutting_down")

    def _response(
        self,
        request: EditRequest,
        inputs: RenderInputs,
        images: list[bytes],
        inference: float,
        base_url: str,
    ) -> bytes:
        width, height = inputs.size
        response_id = uuid.uuid4().hex
        data: list[dict[str, object]]
        if request.response_format == "url":
            # As SGLang without cloud storage: the images stay here, under the content route.
            key = self.store.put(images, _MEDIA_TYPES[request.output_format])
            response_id = key
            data = [
                {
                    "url": f"{base_url}{CONTENT_PREFIX}{key}/content"
                    + (f"?variant={i}" if i else ""),
                    "revised_prompt": request.prompt,
                }
                for i in range(len(images))
            ]
        else:
            # msgspec writes bytes as base64: no intermediate str copies of big images.
            data = [{"b64_json": image, "revised_prompt": request.prompt} for image in images]
        image_tokens = sum(_tokens(i.width, i.height) for i in inputs.images)
        text_tokens = max(1, math.ceil(len(request.prompt.encode()) / 4))
        output_tokens = _tokens(width, height) * len(images)
        envelope = {
            "id": response_id,
            "created": int(time.time()),
            "data": data,
            "output_format": request.output_format,
            "size": f"{width}x{height}",
            "quality": _QUALITY.get(request.quality, request.quality),
            "background": "transparent" if request.background == "transparent" else "opaque",
            "usage": {
                "input_tokens": image_tokens + text_tokens,
                "input_tokens_details": {"image_tokens": image_tokens, "text_tokens": text_tokens},
                "output_tokens": output_tokens,
                "total_tokens": image_tokens + text_tokens + output_tokens,
            },
            "inference_time_s": round(inference, 6),
        }
        return _encoder.encode(envelope)

    # -- helpers -----------------------------------------------------------------------------

    async def _error(self, send: Send, error: ApiError, allow: str | None = None) -> None:
        extra = {"allow": allow} if allow else {}
        await _respond(send, error.status, error.body(), extra=extra)

    def _count(self, route: str, status: int, seconds: float) -> None:
        self.metrics.request_done(route, status, seconds)


def _warm_codecs(renderer: Renderer) -> None:
    from ._params import parse_generation_json

    request = parse_generation_json({"prompt": "warm up", "size": "64x64"})
    renderer.render(request, renderer.decode_inputs(request))


def _base_url(scope: Scope) -> str:
    """http://host:port as the client addressed us, for the URLs of `url` responses."""
    host: bytes
    for name, host in scope["headers"]:
        if name.lower() == b"host":
            return "http://" + host.decode("latin-1")
    server = scope.get("server") or ("127.0.0.1", 80)
    return f"http://{server[0]}:{server[1]}"


def _head_too_large(limit: int) -> ApiError:
    return ApiError(
        431,
        f"the request head (request line and headers) is larger than this server's limit of "
        f"{limit:,} bytes; send smaller headers, or restart imgtrace serve with a larger "
        "--max-header-size",
        code="request_header_fields_too_large",
    )


def _tokens(width: int, height: int) -> int:
    return math.ceil(width / 16) * math.ceil(height / 16)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _content_length(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, f"invalid Content-Length {value!r}") from None


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: str = "application/json",
    extra: dict[str, str] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
