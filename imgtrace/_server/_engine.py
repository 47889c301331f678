"""The latency model: K simulated GPUs behind one FIFO queue, with dynamic batching.

Compute is simulated by sleeping on the event loop (never by burning CPU: the replayer measuring
this server usually shares its machine). The simulated time of a batch is a wall-clock budget
that *includes* the server's real work for it: decoding the inputs (done while the request
waited, so it overlaps the budget), then rendering and encoding the outputs inside it; the
executor sleeps only for what is left. Cached inputs and outputs therefore make the server use
less CPU, never answer sooner, so a second replay of a trace is not faster than the first. When
the work alone takes longer than the budget, the batch runs late: /metrics counts it
(`imgtrace_budget_overruns_total`) and the log says so.

The default costs are calibrated to one H100 running a ~4B-parameter diffusion transformer
(FLUX.2-Klein class, bf16, eager PyTorch): one denoising step over output + reference + text
tokens took 40 ms at 512x512, 89 ms at 768x768 and 173 ms at 1024x1024, and batching gave almost
nothing per image (the GPU is compute-bound).
"""

from __future__ import annotations

import bisect
import logging
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from ._config import ServerConfig
from ._metrics import Metrics

__all__ = [
    "STEP_COST_POINTS",
    "Engine",
    "Job",
    "QueueFull",
    "service_seconds",
    "step_seconds",
]

# (output megapixels, seconds per image per denoising step) measured on one H100.
STEP_COST_POINTS = ((0.262144, 0.040), (0.589824, 0.089), (1.048576, 0.173))
BATCH_OVERHEAD_S = 0.030  # text encoding and scheduling, once per batch
DECODE_S_PER_MP = 0.060  # VAE encode of the reference + decode of the output, per image
# An overrun is logged at most this often (seconds); /metrics counts every one.
OVERRUN_LOG_INTERVAL_S = 10.0

logger = logging.getLogger("imgtrace.serve")


def step_seconds(width: int, height: int) -> float:
    """Per-image cost of one step at this output size: the measured points, interpolated."""
    megapixels = width * height / 1e6
    xs = [p[0] for p in STEP_COST_POINTS]
    ys = [p[1] for p in STEP_COST_POINTS]
    if megapixels <= xs[0]:
        return ys[0] * megapixels / xs[0]
    i = min(bisect.bisect_left(xs, megapixels), len(xs) - 1)
    slope = (ys[i] - ys[i - 1]) / (xs[i] - xs[i - 1])
    return ys[i - 1] + slope * (megapixels - xs[i - 1])


def service_seconds(
    width: int, height: int, steps: int, images: int, batch_gain: float = 0.01
) -> float:
    """Simulated GPU seconds (at speed 1) of one batch of `images` outputs of one shape.

    overhead + steps x per-step cost x images x efficiency, where a batch of b images costs
    (1 - gain x (1 - 1/b)) of b separate ones.
    """
    efficiency = 1.0 - batch_gain * (1.0 - 1.0 / images)
    megapixels = width * height / 1e6
    compute = steps * step_seconds(width, height) * images * efficiency
    return BATCH_OVERHEAD_S + compute + DECODE_S_PER_MP * megapixels * images


class QueueFull(Exception):
    """Raised by `Engine.process` when --max-queue jobs are already waiting."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the queue is full ({limit} requests); retry later")
        self.limit = limit


@dataclass(eq=False)
class Job:
    """One request's share of GPU work; the engine fills in what happened to it."""

    width: int
    height: int
    steps: int
    n: int
    arrived: float | None = None
    """When the server began its own work on the request (decoding its inputs): the budget may
    absorb that work. None: when it was queued."""
    work: Callable[[], Awaitable[None]] | None = None
    """The request's real work (render and encode), run inside the batch's budget."""
    done: anyio.Event = field(default_factory=anyio.Event)
    enqueued: float = 0.0
    started: float = 0.0
    finished: float = 0.0
    batch_images: int = 0
    executor: int = -1
    cold_start: bool = False
    overran: bool = False
    failure: Exception | None = None
    """What `work` raised; `Engine.process` raises it in the request's task."""

    @property
    def queue_seconds(self) -> float:
        """From arrival to the start of its batch's budget: time spent waiting for a GPU."""
        arrived = self.enqueued if self.arrived is None else self.arrived
        return max(0.0, self.started - arrived)

    def compatible(self, other: Job) -> bool:
        # Real servers batch only same-shape work: one latent size, one step count.
        return (self.width, self.height, self.steps) == (other.width, other.height, other.steps)


class Engine:
    """FIFO queue + `config.gpus` executors; `await engine.process(job)` returns when done."""

    def __init__(self, config: ServerConfig, metrics: Metrics, rng: random.Random) -> None:
        self.config = config
        self.metrics = metrics
        self._rng = rng
        self._queue: deque[Job] = deque()
        self._wakeup = anyio.Event()
        self._idle = 0  # executors waiting for work
        self.busy = 0
        self._overrun_logged = -math.inf
        metrics.queue_depth = lambda: self.queue_depth
        metrics.busy_executors = lambda: self.busy
        metrics.executors = config.gpus

    @property
    def queue_depth(self) -> int:
        """Jobs waiting for an executor (not those an idle executor is about to take)."""
        return max(0, len(self._queue) - self._idle)

    async def run(self) -> None:
        """Run the executors until cancelled."""
        async with anyio.create_task_group() as group:
            for index in range(self.config.gpus):
                group.start_soon(self._executor, index)

    async def process(self, job: Job) -> None:
        """Queue `job` and wait until it ran; QueueFull at once if --max-queue jobs wait."""
        # No await between the check and the append: the limit holds under any concurrency.
        if self.config.max_queue and self.queue_depth >= self.config.max_queue:
            raise QueueFull(self.config.max_queue)
        job.enqueued = anyio.current_time()
        if job.arrived is None or job.arrived > job.enqueued:
            job.arrived = job.enqueued
        self._queue.append(job)
        self._wakeup.set()
        await job.done.wait()
        if job.failure is not None:
            raise job.failure

    async def _next(self) -> Job:
        self._idle += 1
        try:
            while not self._queue:
                if self._wakeup.is_set():
                    self._wakeup = anyio.Event()
                await self._wakeup.wait()
            return self._queue.popleft()
        finally:
            self._idle -= 1

    async def _executor(self, index: int) -> None:
        cold = self.config.cold_start > 0
        free = -math.inf  # idle since it started: a request's decoding never waited for it
        while True:
            batch = [await self._next()]
            self._fill(batch)
            window = 0.0
            if self.config.batch_window > 0 and self._images(batch) < self.config.max_batch:
                # Wait a little for more compatible work, as dynamic batchers do.
                window = anyio.current_time()
                await anyio.sleep(self.config.scaled(self.config.batch_window))
                window = anyio.current_time() - window
                self._fill(batch)
            # The budget starts when this executor was free and the batch's requests had
            # arrived: their decoding, done meanwhile, is part of it (a window is not).
            arrived = max(job.enqueued if job.arrived is None else job.arrived for job in batch)
            begin = min(anyio.current_time(), max(free, arrived) + window)
            await self._run_batch(index, batch, cold, begin)
            cold = False
            free = anyio.current_time()

    def _images(self, batch: list[Job]) -> int:
        return sum(job.n for job in batch)

    def _fill(self, batch: list[Job]) -> None:
        """Move queued jobs compatible with batch[0] into the batch, in FIFO order."""
        room = self.config.max_batch - self._images(batch)
        if room <= 0 or not self._queue:
            return
        kept: deque[Job] = deque()
        for job in self._queue:
            if room >= job.n and job.compatible(batch[0]):
                batch.append(job)
                room -= job.n
            else:
                kept.append(job)
        self._queue = kept

    async def _run_batch(self, index: int, batch: list[Job], cold: bool, begin: float) -> None:
        head = batch[0]
        images = self._images(batch)
        seconds = service_seconds(
            head.width, head.height, head.steps, images, self.config.batch_gain
        )
        if self.config.jitter:
            # Log-normal with mean 1: never negative, a longer right tail, like real kernels.
            sigma = self.config.jitter
            seconds *= math.exp(self._rng.gauss(0.0, sigma) - sigma * sigma / 2)
        if cold:
            seconds += self.config.cold_start
            self.metrics.cold_starts += 1
        budget = self.config.scaled(seconds)
        self.busy += 1
        try:
            for job in batch:
                if job.work is not None:
                    try:
                        await job.work()
                    except Exception as exc:  # that request fails, not the executor
                        job.failure = exc
            remaining = begin + budget - anyio.current_time()
            if remaining > 0:
                await anyio.sleep(remaining)
            elif budget > 0:
                self._overrun(batch, budget, -remaining)
        finally:
            self.busy -= 1
        finished = anyio.current_time()
        self.metrics.batches += 1
        self.metrics.batch_size.observe(images)
        self.metrics.service.observe(finished - begin)
        for job in batch:
            job.started, job.finished = begin, finished
            job.batch_images, job.executor, job.cold_start = images, index, cold
            self.metrics.queue_wait.observe(job.queue_seconds)
            job.done.set()

    def _overrun(self, batch: list[Job], budget: float, late: float) -> None:
        """The real work alone outlasted the simulated time: the latency now shows the CPU."""
        self.metrics.budget_overruns += 1
        for job in batch:
            job.overran = True
        now = anyio.current_time()
        if now - self._overrun_logged >= OVERRUN_LOG_INTERVAL_S:
            self._overrun_logged = now
            head = batch[0]
            logger.warning(
                "a %dx%d batch of %d image(s) took %.1f ms longer than its %.1f ms budget: the "
                "server's own decode/render/encode work exceeds the simulated time (%d overruns "
                "so far; lower --speed, or see imgtrace_budget_overruns_total)",
                head.width,
                head.height,
                self._images(batch),
                late * 1e3,
                budget * 1e3,
                self.metrics.budget_overruns,
            )
