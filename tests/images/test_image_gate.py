"""`--fail-on images:changed>0` with `--noise` against a nondeterministic reference server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gate_runs import SERVER, gate, replay, synth


@pytest.mark.slow
def test_the_image_gate_passes_a_a_and_fails_a_variant(
    tmp_path: Path, spawn_server: Callable[..., Any]
) -> None:
    trace = synth(tmp_path, seed=3, count=16)
    noisy = spawn_server(*SERVER, "--noise", "2", "--random-seed", "3")
    variant = spawn_server(*SERVER, "--noise", "2", "--variant", "b", "--random-seed", "4")
    runs = {name: tmp_path / f"{name}.run" for name in ("a", "a2", "a3", "b")}
    for name in ("a", "a2", "a3"):
        replay(trace, noisy.url, runs[name])
    replay(trace, variant.url, runs["b"])

    same = gate(runs["a"], runs["a2"], runs["a3"])
    assert same.returncode == 0, same.stdout + same.stderr
    assert "changes more outputs than the A/A noise" not in same.stdout

    changed = gate(runs["a"], runs["b"], runs["a3"])
    assert changed.returncode == 1, changed.stdout + changed.stderr
    assert "breaking images:changed>0" in changed.stdout + changed.stderr
    assert "B changes more outputs than the A/A noise" in changed.stdout
