"""The latency model: calibration, FIFO batching, and queueing visible in /metrics."""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from samples import edit, upload
from server_support import Server, make_png

from imgtrace._server._config import ServerConfig
from imgtrace._server._engine import Engine, Job, service_seconds, step_seconds
from imgtrace._server._metrics import Metrics
from traces import Header, TraceWriter

PNG = make_png((512, 512))


def test_step_cost_reproduces_the_h100_calibration() -> None:
    assert step_seconds(512, 512) == pytest.approx(0.040)
    assert step_seconds(768, 768) == pytest.approx(0.089)
    assert step_seconds(1024, 1024) == pytest.approx(0.173)
    sizes = [(256, 256), (512, 512), (640, 640), (1024, 1024), (1536, 1024), (2048, 2048)]
    costs = [step_seconds(w, h) for w, h in sizes]
    assert costs == sorted(costs) and costs[0] > 0


def test_service_time_is_overhead_plus_steps_times_cost_times_images() -> None:
    single = service_seconds(1024, 1024, 4, 1)
    assert single == pytest.approx(0.030 + 4 * 0.173 + 0.060 * 1.048576)
    # A 4-step 1024x1024 edit is ~0.7 s of GPU time plus encode/decode overhead.
    assert 0.7 < single < 0.85
    batch = service_seconds(1024, 1024, 4, 4, batch_gain=0.01)
    per_image_step = (batch - 0.030 - 4 * 0.060 * 1.048576) / (4 * 4)
    assert per_image_step == pytest.approx(0.173 * 0.9925)  # batching gains ~1% per image
    assert service_seconds(1024, 1024, 4, 4, batch_gain=0.5) < batch


async def test_engine_batches_queued_same_shape_jobs_in_fifo_order() -> None:
    config = ServerConfig(speed=1000, max_batch=4, jitter=0, cold_start=0)
    engine = Engine(config, Metrics(), random.Random(0))
    jobs = [
        Job(512, 512, 4, 1),
        Job(1024, 1024, 4, 1),
        Job(512, 512, 4, 1),
        Job(512, 512, 4, 2),
        Job(512, 512, 4, 1),
    ]
    async with anyio.create_task_group() as group:
        for job in jobs:
            group.start_soon(engine.process, job)
        await anyio.wait_all_tasks_blocked()
        assert engine.queue_depth == 5
        group.start_soon(engine.run)
        with anyio.fail_after(10):
            for job in jobs:
                await job.done.wait()
        group.cancel_scope.cancel()
    first, second, third = jobs[0].started, jobs[1].started, jobs[4].started
    # Batch 1: the head and the same-shape jobs behind it, up to 4 images (1 + 1 + 2).
    assert [jobs[i].started for i in (0, 2, 3)] == [first] * 3
    assert jobs[0].batch_images == 4
    # The 1024x1024 job keeps its place: next, alone; then the one that did not fit.
    assert first < second < third
    assert (jobs[1].batch_images, jobs[4].batch_images) == (1, 1)


async def test_batch_window_waits_for_more_same_shape_work() -> None:
    config = ServerConfig(speed=1, max_batch=4, batch_window=0.2, jitter=0, cold_start=0)
    engine = Engine(config, Metrics(), random.Random(0))
    first, late, other = Job(64, 64, 1, 1), Job(64, 64, 1, 1), Job(64, 64, 2, 1)
    async with anyio.create_task_group() as group:
        group.start_soon(engine.run)
        group.start_soon(engine.process, first)
        await anyio.wait_all_tasks_blocked()  # the executor took `first` and is in its window
        assert engine.queue_depth == 0
        group.start_soon(engine.process, late)
        group.start_soon(engine.process, other)
        with anyio.fail_after(10):
            for job in (first, late, other):
                await job.done.wait()
        group.cancel_scope.cancel()
    assert late.started == first.started and first.batch_images == 2
    assert other.started > first.started  # another step count: not batched


async def _run_jobs(engine: Engine, jobs: list[Job]) -> None:
    async with anyio.create_task_group() as group:
        group.start_soon(engine.run)
        for job in jobs:
            group.start_soon(engine.process, job)
        with anyio.fail_after(10):
            for job in jobs:
                await job.done.wait()
        group.cancel_scope.cancel()


async def test_the_real_work_is_inside_the_simulated_time() -> None:
    config = ServerConfig(speed=1, jitter=0, cold_start=0)
    budget = service_seconds(64, 64, 4, 1)
    done: list[float] = []

    async def work() -> None:
        await anyio.sleep(budget / 2)  # half the budget: the executor sleeps only the rest
        done.append(anyio.current_time())

    job = Job(64, 64, 4, 1, work=work)
    started = anyio.current_time()
    await _run_jobs(Engine(config, Metrics(), random.Random(0)), [job])
    assert job.finished - started == pytest.approx(budget, abs=0.03)
    assert done and done[0] < job.finished and not job.overran
    # Work done before the job was queued (decoding) counts too, when no GPU was busy.
    early = Job(64, 64, 4, 1, arrived=anyio.current_time())
    await anyio.sleep(budget / 2)
    await _run_jobs(Engine(config, Metrics(), random.Random(0)), [early])
    assert early.finished - early.arrived == pytest.approx(budget, abs=0.03)  # type: ignore[operator]
    assert early.queue_seconds == 0


async def test_work_beyond_the_budget_is_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = ServerConfig(speed=100, jitter=0, cold_start=0)
    metrics = Metrics()

    async def slow_work() -> None:
        await anyio.sleep(0.05)  # the budget is 64x64, 4 steps at speed 100: about 1.8 ms

    jobs = [Job(64, 64, 4, 1, work=slow_work), Job(64, 64, 4, 1, work=slow_work)]
    with caplog.at_level("WARNING", logger="imgtrace.serve"):
        await _run_jobs(Engine(config, metrics, random.Random(0)), jobs)
    assert metrics.budget_overruns == 2 and all(job.overran for job in jobs)
    assert "imgtrace_budget_overruns_total 2" in metrics.render()
    # Logged once (at most every 10 s), saying what ran late.
    messages = [r.getMessage() for r in caplog.records if "budget" in r.getMessage()]
    assert len(messages) == 1 and "64x64" in messages[0]


async def test_a_failing_work_fails_its_request_not_the_executor() -> None:
    config = ServerConfig(speed=1000, jitter=0, cold_start=0)

    async def broken() -> None:
        raise ValueError("render failed")

    engine = Engine(config, Metrics(), random.Random(0))
    bad, good = Job(64, 64, 4, 1, work=broken), Job(64, 64, 4, 1)
    async with anyio.create_task_group() as group:
        group.start_soon(engine.run)
        with pytest.raises(ValueError, match="render failed"):
            await engine.process(bad)
        with anyio.fail_after(10):
            await engine.process(good)  # the executor still runs
        group.cancel_scope.cancel()
    assert good.done.is_set()


def server_cpu_seconds(server: Server) -> float:
    with open(f"/proc/{server.process.pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, name
    return float(match.group(1))


@pytest.fixture(scope="module")
def servers(start: Callable[..., list[Server]]) -> list[Server]:
    return start(
        ["--speed", "2", "--max-batch", "4", "--jitter", "0", "--cold-start", "0.4"],
        ["--speed", "1", "--gpus", "2", "--max-queue", "2", "--cold-start", "0"],
    )


async def post_many(url: str, count: int) -> list[httpx.Response]:
    responses: list[httpx.Response] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:

        async def one(seed: int) -> None:
            responses.append(
                await http.post(
                    "/v1/images/edits",
                    files=[("image", ("a.png", PNG, "image/png"))],
                    data={"prompt": "teal", "seed": str(seed)},
                )
            )

        async with anyio.create_task_group() as group:
            for seed in range(count):
                group.start_soon(one, seed)
    return responses


async def test_cold_start_then_queueing_and_batching_show_in_metrics(
    servers: list[Server],
) -> None:
    server = servers[0]
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        files = [("image", ("a.png", PNG, "image/png"))]
        cpu = server_cpu_seconds(server)
        first = await http.post("/v1/images/edits", files=files, data={"prompt": "x"})
        cpu = server_cpu_seconds(server) - cpu
        second = await http.post("/v1/images/edits", files=files, data={"prompt": "y"})
    assert first.headers["x-imgtrace-cold-start"] == "1"
    assert second.headers["x-imgtrace-cold-start"] == "0"
    simulated = first.json()["inference_time_s"]
    assert simulated >= 0.19  # 0.4 s of cold start at speed 2
    # The simulated compute is slept, not burned: the server used far less CPU than that.
    assert cpu < simulated / 2
    responses = await post_many(server.url, 8)
    assert [r.status_code for r in responses] == [200] * 8
    batch_sizes = [int(r.headers["x-imgtrace-batch-images"]) for r in responses]
    assert max(batch_sizes) > 1
    assert max(float(r.headers["x-imgtrace-queue-seconds"]) for r in responses) > 0
    async with httpx.AsyncClient() as http:
        text = (await http.get(server.url + "/metrics")).text
    batches = metric(text, "imgtrace_batches_total")
    assert batches < 10  # 10 requests, fewer batches: some ran together
    assert metric(text, "imgtrace_batch_size_sum") == 10
    assert metric(text, 'imgtrace_batch_size_bucket{le="1"}') < batches
    assert metric(text, "imgtrace_queue_wait_seconds_sum") > 0
    assert metric(text, "imgtrace_cold_starts_total") == 1
    assert metric(text, 'imgtrace_requests_total{route="/v1/images/edits",status="200"}') == 10


async def test_two_gpus_share_the_queue_and_a_full_queue_answers_429(
    servers: list[Server],
) -> None:
    server = servers[1]
    responses = await post_many(server.url, 8)
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) == {200, 429}
    ok = [r for r in responses if r.status_code == 200]
    assert {r.headers["x-imgtrace-executor"] for r in ok} == {"0", "1"}
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["code"] == "queue_full"
    async with httpx.AsyncClient() as http:
        text = (await http.get(server.url + "/metrics")).text
    assert metric(text, 'imgtrace_requests_total{route="/v1/images/edits",status="429"}') == (
        statuses.count(429)
    )


def _replay_trace(path: Path, requests: int, spacing_ns: int) -> Path:
    """Image edits of 768x768 outputs from four 768x768 inputs: real decode, render and
    encode work that the server's caches skip on every replay after the first."""
    inputs = [make_png((768, 768), (40 * i, 200 - 30 * i, 90)) for i in range(4)]
    with TraceWriter(path, Header(kind="trace", source="synthetic")) as writer:
        images = [upload(writer.add_blob(data, "image/png"), len(data)) for data in inputs]
        for index in range(requests):
            prompt = f"paint it teal {index % 5}"
            fields = {"size": "768x768", "num_inference_steps": "4", "seed": str(index)}
            request = edit(f"e{index:03d}", index * spacing_ns, images[index % 4], prompt, **fields)
            writer.write(request)
    return path


@pytest.mark.slow
def test_three_replays_in_a_row_are_the_same_to_compare(
    tmp_path: Path,
    spawn_server: Callable[..., Any],
    imgtrace: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    # Speed 4: about 105 ms of simulated time per request. The server's real work (decode,
    # render and PNG-encode a 768x768 output, ~20 ms; ~3 ms when cached) fits in it with room
    # for a busy machine; 150 ms apart, so no request queues. Without the budget the work came
    # on top, and the cached second replay was `faster` than the first by over 10%.
    server = spawn_server("--speed", "4", "--jitter", "0", "--cold-start", "0", "--load-time", "0")
    trace = _replay_trace(tmp_path / "t.imgtrace", 60, 150_000_000)
    runs = []
    for attempt in range(3):
        run = tmp_path / f"run{attempt}.imgtrace"
        result = imgtrace(
            "replay", str(trace), "--target", server.url, "-o", str(run), "--no-progress"
        )
        assert result.returncode == 0, result.stderr
        runs.append(run)
    for first, second in ((0, 1), (0, 2), (1, 2)):
        report = tmp_path / f"aa{first}{second}.json"
        result = imgtrace(
            "compare", str(runs[first]), str(runs[second]), "--no-images",
            "--min-effect", "5%", "--json", str(report),
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        effects = json.loads(report.read_text())["comparisons"][0]["effects"]
        typical = next(e for e in effects if e["statistic"] == "typical")
        seen = (first, second, typical["estimate"], typical["ci"])
        assert typical["verdict"] == "~", (*seen, "overruns", overruns(server.url))
        assert abs(typical["estimate"]) < 0.05
    # The work fit inside the budget, so the latency is the model's, not the CPU's.
    assert overruns(server.url) <= 3


def overruns(url: str) -> float:
    """imgtrace_budget_overruns_total, NaN if the server does not report it."""
    text = httpx.get(url + "/metrics").text
    match = re.search(r"^imgtrace_budget_overruns_total (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else math.nan


def test_responses_are_not_held_back_by_delayed_acks(fast: Server) -> None:
    # With Nagle on, a body written after its headers waits for the client's delayed ACK:
    # about every other response then takes 40 ms more to arrive after its first byte.
    files = [("image", ("a.png", make_png((128, 128)), "image/png"))]
    slow = 0
    with httpx.Client(base_url=fast.url, timeout=30) as http:
        for seed in range(12):
            data = {"prompt": "teal", "seed": str(seed)}
            with http.stream("POST", "/v1/images/edits", files=files, data=data) as response:
                first_byte = time.perf_counter()
                response.read()
                slow += time.perf_counter() - first_byte > 0.025
            assert response.status_code == 200
    assert slow <= 2
