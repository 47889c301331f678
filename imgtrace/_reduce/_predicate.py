"""The `--until` language: when does a replay reproduce the failure?

    status>=500          any request answered with a status >= 500 (also >, <, <=, ==, !=)
    error=timeout|reset  any request failed without a response of one of these kinds:
                         timeout, reset, connect, invalid-response
    latency>2s           any request took longer than 2 s from its intended send time
    latency[r-0412]>2s   the request r-0412 did
    image:changed        any output image changed against the baseline run (--baseline)

combined with `and`, `or`, `not` and parentheses (`and` binds tighter). Send lag is excluded by
design: it measures imgtrace's own lateness, not the server, so a search that chased it would
shrink the trace to whatever the replaying machine found hard.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from traces import UsageError

__all__ = [
    "ERROR_KINDS",
    "Observation",
    "Predicate",
    "RunView",
    "parse_predicate",
]

ERROR_KINDS: dict[str, frozenset[str]] = {
    "timeout": frozenset({"timeout"}),
    # A connection closed or reset mid-exchange shows up as a failed read or write.
    "reset": frozenset({"read", "write"}),
    "connect": frozenset({"connect"}),
    "invalid-response": frozenset({"protocol"}),
}
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "": 1.0}
_OP = r"(>=|<=|==|!=|=|>|<)"
_TOKENS = [
    ("space", re.compile(r"\s+")),
    ("open", re.compile(r"\(")),
    ("close", re.compile(r"\)")),
    ("and", re.compile(r"(?:and\b|&&|,)", re.IGNORECASE)),
    ("or", re.compile(r"(?:or\b|\|\|)", re.IGNORECASE)),
    ("not", re.compile(r"(?:not\b|!(?!=))", re.IGNORECASE)),
    ("status", re.compile(rf"status\s*{_OP}\s*(\d+)\b", re.IGNORECASE)),
    ("error", re.compile(r"error\s*=\s*([a-z][a-z-]*(?:\|[a-z][a-z-]*)*)", re.IGNORECASE)),
    (
        "latency",
        re.compile(
            rf"latency(?:\[([^\]\s]+)\])?\s*{_OP}\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m)?\b",
            re.IGNORECASE,
        ),
    ),
    ("image", re.compile(r"image\s*:\s*([a-z-]+)", re.IGNORECASE)),
    ("lag", re.compile(r"lag\b", re.IGNORECASE)),
]
EXAMPLES = "status>=500, error=timeout|reset|connect|invalid-response, latency>2s, image:changed"


@dataclass(frozen=True)
class Observation:
    """What one send of a replay came to, as the predicates see it."""

    request_id: str
    status: int | None
    error_kind: str | None
    latency_s: float | None
    """From the intended send time to the last byte; None when it never finished."""


@dataclass
class RunView:
    """One replay's observations, and its changed images when a predicate asks for them."""

    observations: Sequence[Observation]
    changed_images: Callable[[], set[str]] | None = None
    _changed: set[str] | None = field(default=None, repr=False)

    def changed(self) -> set[str]:
        if self._changed is None:
            if self.changed_images is None:
                raise UsageError("image:changed needs a baseline run: pass --baseline RUN")
            self._changed = self.changed_images()
        return self._changed


class Predicate:
    """A node of a parsed `--until` expression."""

    text: str = ""
    needs_images: bool = False

    def hits(self, run: RunView) -> list[str]:
        """Request ids that make the predicate hold (empty when it does not hold).

        For `not` and for combinations the list may name no request: "*" stands for the run.
        """
        raise NotImplementedError

    def holds(self, run: RunView) -> bool:
        return bool(self.hits(run))

    def __str__(self) -> str:
        return self.text


@dataclass(eq=False)
class _Threshold(Predicate):
    """Holds for the requests whose measure, where they have one, compares true with `value`."""

    op: str
    value: float
    text: str

    def measure(self, o: Observation) -> float | None:
        raise NotImplementedError

    def hits(self, run: RunView) -> list[str]:
        compare = _COMPARE[self.op]
        return [
            o.request_id
            for o in run.observations
            if (measured := self.measure(o)) is not None and compare(measured, self.value)
        ]


class _Status(_Threshold):
    def measure(self, o: Observation) -> float | None:
        return o.status


@dataclass(eq=False)
class _Error(Predicate):
    kinds: frozenset[str]
    text: str

    def hits(self, run: RunView) -> list[str]:
        return [o.request_id for o in run.observations if o.error_kind in self.kinds]


@dataclass(eq=False)
class _Latency(_Threshold):
    request_id: str | None = None
    """Only this request counts; None: any request."""

    def measure(self, o: Observation) -> float | None:
        if self.request_id is not None and o.request_id != self.request_id:
            return None
        return o.latency_s


@dataclass(eq=False)
class _ImageChanged(Predicate):
    text: str
    needs_images: bool = True

    def hits(self, run: RunView) -> list[str]:
        return sorted(run.changed())


@dataclass(eq=False)
class _Combined(Predicate):
    parts: list[Predicate]
    text: str

    def __post_init__(self) -> None:
        self.needs_images = any(part.needs_images for part in self.parts)


class _All(_Combined):
    def hits(self, run: RunView) -> list[str]:
        found: list[str] = []
        for part in self.parts:
            hits = part.hits(run)
            if not hits:
                return []
            found.extend(hit for hit in hits if hit not in found)
        return found


class _Any(_Combined):
    def hits(self, run: RunView) -> list[str]:
        found: list[str] = []
        for part in self.parts:
            found.extend(hit for hit in part.hits(run) if hit not in found)
        return found


@dataclass(eq=False)
class _Not(Predicate):
    inner: Predicate
    text: str

    def __post_init__(self) -> None:
        self.needs_images = self.inner.needs_images

    def hits(self, run: RunView) -> list[str]:
        return [] if self.inner.holds(run) else ["*"]


def _tokenize(text: str) -> list[tuple[str, re.Match[str]]]:
    tokens: list[tuple[str, re.Match[str]]] = []
    position = 0
    while position < len(text):
        found = _next_token(text, position)
        if found is None:
            raise _bad(text, position, f"expected one of {EXAMPLES}")
        kind, match = found
        if kind == "lag":
            raise UsageError(
                f"predicate {text!r}: lag is not a predicate by design: it measures imgtrace's "
                "own lateness, not the server's (use latency>DURATION)"
            )
        if kind != "space":
            tokens.append((kind, match))
        position = match.end()
    return tokens


def _next_token(text: str, position: int) -> tuple[str, re.Match[str]] | None:
    for kind, pattern in _TOKENS:
        match = pattern.match(text, position)
        if match is not None and match.end() > position:
            return kind, match
    return None


def _bad(text: str, position: int, what: str) -> UsageError:
    rest = text[position:] or "the end"
    return UsageError(f"predicate {text!r} does not parse at {rest!r}: {what}")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0

    def _peek(self) -> str | None:
        return self.tokens[self.index][0] if self.index < len(self.tokens) else None

    def _position(self) -> int:
        if self.index < len(self.tokens):
            return self.tokens[self.index][1].start()
        return len(self.text)

    def parse(self) -> Predicate:
        if not self.tokens:
            raise UsageError(f"the predicate is empty: give one of {EXAMPLES}")
        tree = self._or()
        if self.index < len(self.tokens):
            raise _bad(self.text, self._position(), "expected and, or or the end")
        return tree

    def _or(self) -> Predicate:
        return self._chain("or", self._and, _Any)

    def _and(self) -> Predicate:
        return self._chain("and", self._unary, _All)

    def _chain(
        self, word: str, operand: Callable[[], Predicate], joined: type[_Combined]
    ) -> Predicate:
        """One operand, or several joined by `word` (the grammar's `a or b`, `a and b`)."""
        start = self._position()
        parts = [operand()]
        while self._peek() == word:
            self.index += 1
            parts.append(operand())
        return parts[0] if len(parts) == 1 else joined(parts, self._span(start))

    def _unary(self) -> Predicate:
        kind = self._peek()
        start = self._position()
        if kind is None:
            raise _bad(self.text, start, f"expected one of {EXAMPLES}")
        if kind == "not":
            self.index += 1
            inner = self._unary()
            return _Not(inner, self._span(start))
        if kind == "open":
            self.index += 1
            inner = self._or()
            if self._peek() != "close":
                raise _bad(self.text, self._position(), "expected ')'")
            self.index += 1
            return inner
        self.index += 1
        return _atom(self.text, kind, self.tokens[self.index - 1][1])

    def _span(self, start: int) -> str:
        end = self.tokens[self.index - 1][1].end()
        return self.text[start:end].strip()


def _atom(text: str, kind: str, match: re.Match[str]) -> Predicate:
    source = match.group(0).strip()
    if kind == "status":
        return _Status(match.group(1), int(match.group(2)), source)
    if kind == "error":
        names = match.group(1).lower().split("|")
        unknown = [name for name in names if name not in ERROR_KINDS]
        if unknown:
            raise UsageError(
                f"predicate {text!r}: unknown error kind {unknown[0]!r}; "
                f"use {'|'.join(ERROR_KINDS)}"
            )
        return _Error(frozenset().union(*(ERROR_KINDS[name] for name in names)), source)
    if kind == "latency":
        op = match.group(2)
        if op in ("=", "==", "!="):
            raise UsageError(f"predicate {text!r}: compare latency with >, >=, < or <=")
        seconds = float(match.group(3)) * _UNITS[(match.group(4) or "").lower()]
        return _Latency(op, seconds, source, request_id=match.group(1))
    if kind == "image":
        if match.group(1).lower() != "changed":
            raise UsageError(f"predicate {text!r}: the image predicate is image:changed")
        return _ImageChanged(source)
    raise _bad(text, match.start(), f"expected one of {EXAMPLES}")


def parse_predicate(texts: str | Sequence[str]) -> Predicate:
    """Parse one `--until` expression, or several (all must hold); UsageError when bad."""
    if isinstance(texts, str):
        return _Parser(texts).parse()
    parts = [_Parser(text).parse() for text in texts]
    if not parts:
        raise UsageError(f"reduce needs --until PREDICATE, e.g. {EXAMPLES}")
    return parts[0] if len(parts) == 1 else _All(parts, " and ".join(map(str, parts)))
