"""`imgtrace replay --repeat K`: one line per repetition, then how often each failure came back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._shared import write_json

if TYPE_CHECKING:
    from replayer import ReplayConfig

__all__ = ["repeat_command"]


def repeat_command(
    config: ReplayConfig,
    repeat: int,
    console: Any,
    json_target: str | None,
    reset: str | None = None,
) -> int:
    """`imgtrace replay --repeat K`: run, print one line per repetition and the reproductions."""

    from replayer import ReplayError, replay_repeated, run_reset

    def announce(index: int) -> None:
        if reset:
            run_reset(reset)
        if index:
            console.print(f"repetition {index + 1} of {repeat}", markup=False, soft_wrap=True)

    result = replay_repeated(config, repeat, announce)
    for index, one in enumerate(result.results):
        stats = one.stats
        console.print(
            f"repetition {index + 1}/{repeat}: {stats.sent} sent, {stats.errors} errors; "
            f"{one.lag.line()}",
            markup=False,
            soft_wrap=True,
        )
    console.print(
        f"run file: {result.output} ({len(result.results)} repetitions)",
        markup=False,
        soft_wrap=True,
    )
    if result.reproductions:
        console.print("failures reproduced:", markup=False, soft_wrap=True)
        for found in result.reproductions:
            console.print(f"  {found.line()}", markup=False, soft_wrap=True)
    else:
        console.print(
            f"no failures in {len(result.results)} repetitions", markup=False, soft_wrap=True
        )
    write_json(json_target, result.as_dict())
    if result.nothing_connected:
        raise ReplayError(
            f"not a single request could connect to {config.target}; check --target and that "
            f"the server is up (the run file {result.output} was written anyway)"
        )
    return 130 if result.interrupted else 0
