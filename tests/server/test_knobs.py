"""Knobs that emulate configuration changes: variant, noise, errors, timeouts, slow requests."""

from __future__ import annotations

import base64
import signal
import threading
import time
from collections.abc import Callable

import httpx
import numpy as np
import pytest
from server_support import Server, assert_error, decode, edit, make_png

PNG = make_png((128, 96))


@pytest.fixture(scope="module")
def servers(start: Callable[..., list[Server]]) -> dict[str, Server]:
    names = ("variant", "noise", "error", "slow", "timeout")
    started = start(
        ["--speed", "1000", "--variant", "b"],
        ["--speed", "1000", "--noise", "2"],
        ["--speed", "1000", "--error-rate", "1"],
        ["--speed", "10", "--slow-rate", "1", "--slow-factor", "3", "--jitter", "0"],
        ["--speed", "1000", "--timeout-rate", "1"],
    )
    return dict(zip(names, started, strict=True))


def pixels(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    data = base64.b64decode(response.json()["data"][0]["b64_json"])
    return np.asarray(decode(data).convert("RGB")).astype(int)


def post(server: Server, **fields: str) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        return edit(http, [PNG], **fields)


def test_variant_is_a_small_systematic_change(servers: dict[str, Server], fast: Server) -> None:
    base = pixels(post(fast))
    variant = pixels(post(servers["variant"]))
    assert pixels(post(servers["variant"])).tolist() == variant.tolist()  # still deterministic
    diff = np.abs(variant - base)
    assert diff.max() > 0
    # Nearly every pixel moves, by at most a few levels; only the shape's rim moves more.
    assert np.mean(diff >= 1) > 0.9
    assert np.mean(diff <= 3) > 0.95


def test_noise_is_nondeterministic_and_bounded(servers: dict[str, Server], fast: Server) -> None:
    base = pixels(post(fast))
    first, second = pixels(post(servers["noise"])), pixels(post(servers["noise"]))
    assert first.tolist() != second.tolist()
    assert np.abs(first - base).max() <= 2 and np.abs(second - base).max() <= 2


def test_error_rate_answers_500_in_the_openai_shape(servers: dict[str, Server]) -> None:
    response = post(servers["error"])
    assert_error(response, 500)
    assert response.json()["error"]["code"] == "injected_error"
    metrics = httpx.get(servers["error"].url + "/metrics").text
    assert 'imgtrace_injected_faults_total{kind="error"} 1' in metrics


def test_slow_rate_stretches_requests(servers: dict[str, Server]) -> None:
    response = post(servers["slow"])
    assert response.status_code == 200
    assert response.headers["x-imgtrace-fault"] == "slow"
    metrics = httpx.get(servers["slow"].url + "/metrics").text
    assert 'imgtrace_injected_faults_total{kind="slow"} 1' in metrics


def test_timeout_rate_never_answers_and_sigterm_still_stops_cleanly(
    servers: dict[str, Server],
) -> None:
    server = servers["timeout"]
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            server.url + "/v1/images/edits",
            files=[("image", ("a.png", PNG))],
            data={"prompt": "x"},
            timeout=0.5,
        )
    assert httpx.get(server.url + "/health").status_code == 200
    metrics = httpx.get(server.url + "/metrics").text
    assert 'imgtrace_injected_faults_total{kind="timeout"} 1' in metrics

    # A hanging request in flight must not keep SIGTERM from stopping the server.
    hanging: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: hanging.append(post(server)))
    thread.start()
    with httpx.Client(base_url=server.url) as http:
        for _ in range(200):
            if "imgtrace_requests_in_flight 1" in http.get("/metrics").text:
                break
            time.sleep(0.01)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(10) == 0
    thread.join(10)
    assert_error(hanging[0], 503)
