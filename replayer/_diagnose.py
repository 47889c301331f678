"""Why a whole replay failed: a target whose every request failed the same way is a mistake.

One function reads a run's outcome counts and returns a hint naming the likely mistake, or
None. A replay that never reached the server, or was turned away at every request for the same
reason, measured nothing about the server; the command line says why and exits non-zero.
Server errors (5xx) and timeouts are measurements, never diagnosed here.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["credentials_hint", "diagnose", "refused_credentials"]

_API_VERSION_SEGMENTS = ("v1", "v2", "v1beta")
"""Path segments that image-edit paths already start with (/v1/images/edits)."""


def diagnose(
    statuses: Mapping[str, int],
    error_kinds: Mapping[str, int],
    done: int,
    *,
    connected: int,
    target: str,
    target_path: str = "",
) -> str | None:
    """A hint when every one of the `done` requests failed the same way, else None.

    `statuses` counts HTTP statuses and `error_kinds` transport errors (as `Stats` does);
    `target` is the base URL as shown to users, `target_path` its path (a prefix of every
    request's path).
    """
    if done == 0:
        return None
    if connected == 0:
        return (
            f"not a single request could connect to {target}; check --target and that the "
            "server is up"
        )
    if error_kinds:
        return None
    if refused_credentials(statuses, done):
        return credentials_hint(f"the {done} requests")
    if len(statuses) != 1:
        return None
    ((status, count),) = statuses.items()
    if count != done or not status.isdigit() or not 400 <= int(status) < 500:
        return None
    every = f"every one of the {done} requests got HTTP {status} from {target}"
    if status in ("404", "405"):
        return f"{every}: {_path_hint(target, target_path)}"
    return (
        f"{every}: the server rejects these requests as sent; `imgtrace report` on the run "
        "shows its error messages (a --model, --set or --size the server does not take?)"
    )


def refused_credentials(statuses: Mapping[str, int], done: int) -> bool:
    """Whether every one of the `done` requests was refused with HTTP 401 or 403."""
    return done > 0 and statuses.get("401", 0) + statuses.get("403", 0) == done


def credentials_hint(what: str) -> str:
    """The hint when every one of `what` ("the 3 requests") was refused with 401 or 403."""
    return (
        f"every one of {what} was refused with HTTP 401 or 403: the target wants credentials, "
        "and a trace's credentials are redacted when it is recorded; supply them with --header "
        "'Authorization: Bearer ${TOKEN}' (or --query 'api_key=${KEY}')"
    )


def _path_hint(target: str, target_path: str) -> str:
    prefix = target_path.rstrip("/")
    last = prefix.rsplit("/", 1)[-1]
    if last in _API_VERSION_SEGMENTS:
        base = target[: len(target) - len(target_path)] if target.endswith(target_path) else ""
        fix = f" (--target {base})" if base else ""
        return (
            f"the likely mistake is a doubled path prefix: the target's path {prefix} goes "
            f"before each request's path, which already starts with /{last} "
            f"(/{last}/images/edits went to {prefix}/{last}/images/edits); give the server's "
            f"base URL without {prefix}{fix}"
        )
    if prefix:
        return (
            f"no such route under the target's path {prefix}, which goes before each request's "
            "path; check the prefix (a gateway's route, e.g. http://gw/sglang) or drop it"
        )
    return (
        "the server has no route for the trace's paths; check that --target is the image-edit "
        "server, or give a gateway's route as the target's path (e.g. http://gw/sglang)"
    )
