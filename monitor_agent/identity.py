"""Who this machine is: a stable device id kept in the state folder, hostname, platform."""

from __future__ import annotations

import hashlib
import platform
import re
import socket
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from monitor_agent import __version__
from monitor_agent.agent import Identity

_MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9._:@-]+")


def machine_fingerprint() -> str:
    """Something unique to this machine: the OS machine id, else the MAC address."""
    for path in _MACHINE_ID_FILES:
        try:
            value = path.read_text().strip()
        except OSError:
            continue
        if value:
            return value
    return f"{uuid.getnode():012x}"


def derive_device_id(hostname: str, fingerprint: str) -> str:
    """``<hostname>-<8 hex>``: readable, and distinct for two machines with the same name."""
    name = _NOT_ALLOWED.sub("-", hostname).strip("-._:@")[:100] or "host"
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:8]
    return f"{name}-{digest}"


def _kept(path: Path, make: Callable[[], str]) -> str:
    """The value stored in ``path``, or a new one from ``make`` written there on first start."""
    try:
        stored = path.read_text().strip()
    except FileNotFoundError:
        stored = ""
    if stored:
        return stored
    value = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value + "\n")
    return value


def instance_id(state_dir: Path) -> str:
    """This installation's random id, made at first start: two cloned machines differ here.

    A VM image cloned before its agent first ran gets a new one on each clone, even where the
    clones share a hostname and a machine id; the hub tells two live instances of one device id
    apart with it (and refuses the second).
    """
    return _kept(state_dir / "instance_id", lambda: uuid.uuid4().hex)


def stable_device_id(state_dir: Path) -> str:
    """The id stored in the state folder, created on first start so renames do not change it.

    Derived from the hostname, the machine id and the instance id, so clones that share the
    first two still get distinct ids.
    """
    fingerprint = f"{machine_fingerprint()}:{instance_id(state_dir)}"
    return _kept(state_dir / "device_id", lambda: derive_device_id(socket.gethostname(), fingerprint))


def local_identity(device_id: str, state_dir: Path | None = None, tags: Sequence[str] = ()) -> Identity:
    return Identity(
        device_id=device_id,
        hostname=socket.gethostname(),
        platform=platform.platform(terse=True),
        agent_version=__version__,
        instance_id=instance_id(state_dir) if state_dir is not None else "",
        tags=tuple(tags),
    )
