"""Where the recording proxy listens: its URL, and whether others can reach it.

A proxy reachable from the network forwards anyone's requests to the upstream (with whatever
credentials they carry) and records them, so every address but loopback deserves a warning:
the wildcard addresses (all interfaces) and the host's own network addresses alike.
"""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["exposure_warning", "is_exposed", "listen_url"]

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host.split("%", 1)[0])]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []  # binding will fail with its own clear error
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def is_exposed(host: str) -> bool:
    """True when `host` stands for an address other than loopback (127.0.0.0/8, ::1)."""
    if host.lower() in _LOOPBACK_NAMES:
        return False
    addresses = _addresses(host)
    return bool(addresses) and not all(address.is_loopback for address in addresses)


def listen_url(host: str, port: int) -> str:
    """``http://HOST:PORT``, with an IPv6 address in brackets (``http://[::1]:8080``)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def exposure_warning(host: str, shown: str) -> str | None:
    """The warning to print for listening on `host` (`shown` as the user wrote it), or None."""
    if not is_exposed(host):
        return None
    addresses = _addresses(host)
    if addresses and all(address.is_unspecified for address in addresses):
        where = "binds ALL network interfaces"
    else:
        where = f"binds {host}, an address other machines can reach"
    return (
        f"imgtrace: WARNING: --listen {shown} {where}: anyone who can reach this machine can "
        "send requests through the proxy to the upstream, with its credentials, and have them "
        "recorded. Use 127.0.0.1 unless that is what you want."
    )
