"""Counters, gauges and histograms for GET /metrics, in the Prometheus text format (0.0.4)."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["CONTENT_TYPE", "Histogram", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


@dataclass
class Histogram:
    """A cumulative histogram with fixed upper bounds."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.bounds)

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.bounds, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        sep = "," if labels else ""
        out, running = [], 0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            running += count
            out.append(f'{name}_bucket{{{labels}{sep}le="{_number(bound)}"}} {running}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}')
        suffix = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{suffix} {_number(self.total)}")
        out.append(f"{name}_count{suffix} {self.count}")
        return out


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


@dataclass
class Metrics:
    """Everything /metrics reports; the engine and the app update it, one event loop."""

    queue_depth: Callable[[], int] = lambda: 0
    busy_executors: Callable[[], int] = lambda: 0
    executors: int = 1
    requests: dict[tuple[str, int], int] = field(default_factory=dict)
    in_flight: int = 0
    images: int = 0
    batches: int = 0
    cold_starts: int = 0
    budget_overruns: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    batch_size: Histogram = field(default_factory=lambda: Histogram(BATCH_BUCKETS))
    latency: dict[str, Histogram] = field(default_factory=dict)
    queue_wait: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    service: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))

    def request_done(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        self.latency.setdefault(route, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def fault(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1

    def render(self) -> str:
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")

        family("imgtrace_requests_total", "counter", "HTTP requests answered, by route and status.")
        for (route, status), count in sorted(self.requests.items()):
            lines.append(f'imgtrace_requests_total{{route="{route}",status="{status}"}} {count}')
        single_values = (
            (
                "imgtrace_requests_in_flight",
                "gauge",
                "Image requests being handled now.",
                self.in_flight,
            ),
            (
                "imgtrace_queue_depth",
                "gauge",
                "Requests waiting for an executor.",
                self.queue_depth(),
            ),
            ("imgtrace_executors", "gauge", "Simulated GPUs (--gpus).", self.executors),
            (
                "imgtrace_executors_busy",
                "gauge",
                "Simulated GPUs running a batch now.",
                self.busy_executors(),
            ),
            ("imgtrace_batches_total", "counter", "Batches run by the executors.", self.batches),
            (
                "imgtrace_cold_starts_total",
                "counter",
                "Batches that paid --cold-start.",
                self.cold_starts,
            ),
            (
                "imgtrace_budget_overruns_total",
                "counter",
                "Batches whose real decode/render/encode work outlasted the simulated time.",
                self.budget_overruns,
            ),
            ("imgtrace_images_generated_total", "counter", "Output images produced.", self.images),
        )
        for name, kind, help_text, value in single_values:
            family(name, kind, help_text)
            lines.append(f"{name} {value}")
        family("imgtrace_injected_faults_total", "counter", "Injected faults, by kind.")
        for kind, count in sorted(self.faults.items()):
            lines.append(f'imgtrace_injected_faults_total{{kind="{kind}"}} {count}')
        family(
            "imgtrace_batch_size", "histogram", "Images per batch (a request of n images counts n)."
        )
        lines += self.batch_size.lines("imgtrace_batch_size")
        family("imgtrace_queue_wait_seconds", "histogram", "Time from enqueue to batch start.")
        lines += self.queue_wait.lines("imgtrace_queue_wait_seconds")
        family(
            "imgtrace_service_seconds",
            "histogram",
            "Wall time per batch: the simulated compute, including the real work inside it.",
        )
        lines += self.service.lines("imgtrace_service_seconds")
        family("imgtrace_request_duration_seconds", "histogram", "Request latency, by route.")
        for route, histogram in sorted(self.latency.items()):
            lines += histogram.lines("imgtrace_request_duration_seconds", f'route="{route}"')
        return "\n".join(lines) + "\n"
