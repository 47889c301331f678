"""`imgtrace reduce`: shrink a failing trace to the few requests that still make it fail.

It joins the replayer (each candidate is replayed with its public API) and the analyzer (the
image ladder for `image:changed`); neither knows about the other. The search is delta debugging
(`ddmin`, a pure function unit-tested without servers) over the trace's requests; predicates
are parsed by `parse_predicate`. docs/reproducing.md is the tutorial.
"""

from ._attempts import Attempt, RunnerOptions, write_candidate
from ._ddmin import ddmin, minimize, split
from ._errors import NotReproduced, ReduceError, ResetFailed, TargetDown
from ._predicate import Observation, Predicate, RunView, parse_predicate
from ._search import (
    Progress,
    ReduceConfig,
    ReduceResult,
    never_rate_bound,
    reduce_trace,
    wilson_interval,
)

__all__ = [
    "Attempt",
    "NotReproduced",
    "Observation",
    "Predicate",
    "Progress",
    "ReduceConfig",
    "ReduceError",
    "ReduceResult",
    "ResetFailed",
    "RunView",
    "RunnerOptions",
    "TargetDown",
    "ddmin",
    "minimize",
    "never_rate_bound",
    "parse_predicate",
    "reduce_trace",
    "split",
    "wilson_interval",
    "write_candidate",
]
