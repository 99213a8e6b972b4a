"""Who this machine is: a stable device id kept in the state folder, hostname, platform."""

from __future__ import annotations

import hashlib
import platform
import re
import socket
import uuid
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


def stable_device_id(state_dir: Path) -> str:
    """The id stored in the state folder, created on first start so renames do not change it."""
    path = state_dir / "device_id"
    try:
        stored = path.read_text().strip()
    except FileNotFoundError:
        stored = ""
    if stored:
        return stored
    device_id = derive_device_id(socket.gethostname(), machine_fingerprint())
    state_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(device_id + "\n")
    return device_id


def local_identity(device_id: str) -> Identity:
    return Identity(
        device_id=device_id,
        hostname=socket.gethostname(),
        platform=platform.platform(terse=True),
        agent_version=__version__,
    )
