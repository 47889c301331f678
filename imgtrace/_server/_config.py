"""The reference server's settings, checked once before anything starts."""

from __future__ import annotations

import math
from dataclasses import dataclass

from traces import UsageError, parse_byte_size

from ._planted import Plant

__all__ = ["DEFAULT_PORT", "ServerConfig", "parse_bytes"]

DEFAULT_PORT = 30000  # SGLang's default, so clients configured for it work unchanged


def parse_bytes(text: str) -> int:
    """`64MiB`, `64M`, `500k` or a plain number of bytes -> bytes (`traces.parse_byte_size`)."""
    return parse_byte_size(text)


@dataclass(frozen=True)
class ServerConfig:
    """Every knob of `imgtrace serve`; docs/reference-server.md explains each one."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    speed: float = 1.0
    gpus: int = 1
    max_batch: int = 1
    batch_window: float = 0.0
    cold_start: float = 1.0
    load_time: float = 1.0
    jitter: float = 0.03
    batch_gain: float = 0.01
    variant: str = ""
    noise: int = 0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    slow_rate: float = 0.0
    slow_factor: float = 10.0
    max_body: int = 64 * 1024 * 1024
    max_header_size: int = 64 * 1024
    max_queue: int = 0
    model: str = "imgtrace-reference"
    random_seed: int | None = None
    cache_mb: float = 64.0
    access_log: bool = False
    log_level: str = "warning"
    plant: tuple[Plant, ...] = ()
    plant_rate: float = 1.0

    def __post_init__(self) -> None:
        _check(self.speed > 0 and not math.isnan(self.speed), "--speed must be > 0")
        _check(1 <= self.gpus <= 64, "--gpus must be between 1 and 64")
        _check(1 <= self.max_batch <= 64, "--max-batch must be between 1 and 64")
        for name in ("batch_window", "cold_start", "load_time", "jitter"):
            value = getattr(self, name)
            _check(0 <= value < math.inf, f"--{name.replace('_', '-')} must be >= 0 and finite")
        _check(0 <= self.batch_gain < 1, "--batch-gain must be in [0, 1)")
        _check(0 <= self.noise <= 255, "--noise must be between 0 and 255")
        for name in ("error_rate", "timeout_rate", "slow_rate"):
            value = getattr(self, name)
            _check(0 <= value <= 1, f"--{name.replace('_', '-')} must be between 0 and 1")
        _check(
            self.error_rate + self.timeout_rate <= 1,
            "--error-rate plus --timeout-rate must not exceed 1",
        )
        _check(self.slow_factor >= 1, "--slow-factor must be >= 1")
        _check(self.max_body >= 1024, "--max-body must be at least 1024 bytes")
        _check(self.max_header_size >= 1024, "--max-header-size must be at least 1024 bytes")
        _check(self.max_queue >= 0, "--max-queue must be >= 0 (0 = unlimited)")
        _check(0 <= self.port <= 65535, "--port must be between 0 and 65535")
        _check(self.cache_mb >= 0, "--cache-mb must be >= 0")
        _check(bool(self.model.strip()), "--model must not be empty")
        _check(0 < self.plant_rate <= 1, "--plant-rate must be in (0, 1]")

    def scaled(self, seconds: float) -> float:
        """Simulated seconds -> wall seconds at this speed (0 at an infinite speed)."""
        return 0.0 if math.isinf(self.speed) else seconds / self.speed


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise UsageError(message)
