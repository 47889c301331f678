"""The targets of a replay: one base URL, or named targets replayed side by side (interleaved).

An interleaved replay sends every request of one schedule to every target at the same intended
time. Which target goes first matters a little (the second send of a slot leaves after the
first one's client work, ~0.1-0.2 ms), so the order is drawn per request; `send_order` makes it
a pure function of (seed, send index), which any process holding the plan can compute without
shared state (a dispatcher split across processes draws the same order).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from traces import UsageError

from ._shaping import parse_url

__all__ = ["Target", "Targets", "new_group_id", "new_order_seed", "send_order"]

# A name becomes DIR/NAME.imgtrace: portable file-name characters only, no leading dot or dash.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
RUN_SUFFIX = ".imgtrace"


@dataclass(frozen=True)
class Target:
    """A named target of an interleaved replay; its run is written to DIR/NAME.imgtrace."""

    name: str
    url: str

    def __post_init__(self) -> None:
        # A name with a line break or other control character is shown quoted: one line.
        shown = self.name if self.name.isprintable() else repr(self.name)
        flag = f"--target {shown}=..."
        if not _NAME_RE.match(self.name) or self.name.endswith("."):
            raise UsageError(
                f"{flag}: the name {self.name!r} is not a valid file name (it names "
                "DIR/NAME.imgtrace): use up to 64 letters, digits, '.', '_' or '-', starting "
                "with a letter or digit"
            )
        parse_url(self.url, f"--target {self.name}:")

    def run_path(self, directory: Path) -> Path:
        return directory / f"{self.name}{RUN_SUFFIX}"


def _named(text: str) -> tuple[str, str] | None:
    """`NAME=URL` → (NAME, URL); None for a plain URL (whose query may hold '=')."""
    name, sep, url = text.partition("=")
    if not sep or "://" in name:
        return None
    return name, url


@dataclass(frozen=True)
class Targets:
    """What `--target` was given: one plain URL, or named targets (`NAME=URL`, at least one)."""

    url: str | None = None
    named: tuple[Target, ...] = ()

    def __post_init__(self) -> None:
        if self.url is not None and self.named:
            raise UsageError(
                "--target: give either one plain URL or NAME=URL targets, not both (e.g. "
                "--target a=URL_A --target b=URL_B)"
            )
        seen: set[str] = set()
        for target in self.named:
            if target.name in seen:
                raise UsageError(
                    f"--target {target.name}=...: two targets are named {target.name!r}; each "
                    "target needs its own name (its run file is DIR/NAME.imgtrace)"
                )
            seen.add(target.name)

    @classmethod
    def parse(cls, values: Sequence[str]) -> Targets:
        """The `--target` values of a command line, checked."""
        named = [_named(text) for text in values]
        plain = [text for text, pair in zip(values, named, strict=True) if pair is None]
        if plain and len(plain) < len(values):
            raise UsageError(
                f"--target {plain[0]!r}: a plain URL cannot be mixed with NAME=URL targets; "
                "name every target (e.g. --target a=URL_A --target b=URL_B)"
            )
        if len(plain) > 1:
            raise UsageError(
                "--target: several plain URLs; to replay them side by side, name each one "
                "(--target a=URL_A --target b=URL_B -o DIR)"
            )
        if plain:
            parse_url(plain[0])
            return cls(url=plain[0])
        return cls(named=tuple(Target(name, url) for name, url in (p for p in named if p)))

    @property
    def interleaved(self) -> bool:
        return bool(self.named)


def send_order(seed: int, seq: int, count: int) -> tuple[int, ...]:
    """The order in which send `seq` goes to `count` targets: a seeded Fisher-Yates shuffle.

    Drawn from sha256(seed, seq) rather than one running generator, so the order of a send does
    not depend on which sends came before it (a filtered or partitioned plan draws the same).
    """
    order = list(range(count))
    stream = b""
    block = 0
    for i in range(count - 1, 0, -1):
        if len(stream) < 8:
            stream += hashlib.sha256(f"{seed}:{seq}:{block}".encode()).digest()
            block += 1
        draw, stream = int.from_bytes(stream[:8], "big"), stream[8:]
        j = draw % (i + 1)
        order[i], order[j] = order[j], order[i]
    return tuple(order)


def new_order_seed() -> int:
    """A fresh order seed when none was given (it is recorded in every run's header)."""
    return secrets.randbits(32)


def new_group_id() -> str:
    return secrets.token_hex(8)
