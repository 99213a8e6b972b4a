"""The running agent's part of an update the hub offers (DESIGN §12): download, verify, stage, report.

An agent offers the ``updates`` capability only under the launcher, which hands its child the
release public key it trusts in ``LAUNCHER_KEY_ENV`` (a public key: nothing secret). On an
``update`` frame the agent checks the version first (a downgrade is refused unless the rollout
allows it), reports ``downloading``, downloads the bundle from the hub it is connected to (the
frame's URL resolved against it; any other host is refused, so the credential never leaves for
another server) with its credential, and calls ``install.stage``, which checks hash, signature and
platform before the launcher sees anything. A refusal is reported as ``failed`` with the reason
``update_failed: <code>: ...`` (``protocol.release.failure_reason``).

What the launcher did with the last update (``update/result.json``) is reported once, after a
welcome: ``installed``, ``rolled_back`` (it did not reach welcome: ``update_failed: no_welcome:
...``, ``update_failed: exited: ...``) or ``failed`` (refused, or the install failed).
Only the standard library is imported here; ``cryptography`` loads when an update arrives.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from monitor_agent.update.state import Layout

log = logging.getLogger(__name__)

LAUNCHER_KEY_ENV = "MONITOR_LAUNCHER_RELEASE_KEY"
DOWNLOAD_TIMEOUT = 300.0
MAX_BUNDLE = 512 << 20
RESULT_POLL = 0.5  # seconds between looks at update/result.json while connected
_REPORTED = "result-reported.json"
_RESULT_STATES = {"installed": "installed", "update_failed": "rolled_back", "refused": "failed"}

Report = Callable[[str, str, str], Awaitable[None]]  # (version, state, reason)


@dataclass(frozen=True)
class Updates:
    """What an agent under the launcher needs to take an update."""

    state_dir: Path
    release_key: bytes
    own_version: str

    @property
    def layout(self) -> Layout:
        return Layout(self.state_dir)

    @classmethod
    def from_launcher(
        cls, state_dir: Path, own_version: str, environ: Mapping[str, str] = os.environ
    ) -> Updates | None:
        """Set when the launcher started this agent on ``state_dir`` (its key in the environment)."""
        key = environ.get(LAUNCHER_KEY_ENV, "")
        if not key or not Layout(state_dir).update.is_dir():
            return None
        return cls(state_dir, key.encode(), own_version)


def http_base(ws_url: str) -> str:
    """The hub's HTTP address from its ``/ws/agent`` URL."""
    parts = urlsplit(ws_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}/"


def bundle_url(ws_url: str, path: str) -> str:
    """``path`` resolved against the hub; ValueError if it names another server."""
    base = http_base(ws_url)
    url = urljoin(base, path)
    if urlsplit(url)[:2] != urlsplit(base)[:2]:
        raise ValueError(f"the bundle URL {url[:200]!r} is not on the hub this agent is connected to")
    return url


def download(url: str, headers: Mapping[str, str], dest: Path, context: ssl.SSLContext | None) -> None:
    """Fetch ``url`` into ``dest`` (blocking: run it in a thread)."""
    import urllib.request  # only when an update arrives: the daemon stays as light as it was

    request = urllib.request.Request(url, headers=dict(headers))  # noqa: S310 - http(s) only, checked above
    dest.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with (
        urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT, context=context) as answer,  # noqa: S310
        dest.open("wb") as out,
    ):
        while chunk := answer.read(1 << 20):
            size += len(chunk)
            if size > MAX_BUNDLE:
                raise ValueError(f"the bundle is over {MAX_BUNDLE} bytes")
            out.write(chunk)


def precheck(updates: Updates, version: str, allow_downgrade: bool) -> None:
    """Refuse an offered version before downloading it (``ReleaseRefused``)."""
    from monitor_agent.update.install import running_version
    from protocol.release import check_upgrade

    check_upgrade(running_version(updates.layout, updates.own_version), version, allow_downgrade)


def fetch_and_stage(
    updates: Updates,
    url: str,
    headers: Mapping[str, str],
    context: ssl.SSLContext | None,
    offer: Any,
) -> str:
    """Download and stage the offered release (blocking); its version. Raises ``ReleaseRefused``,
    ``OSError`` or ``ValueError``."""
    from monitor_agent.update.install import stage

    layout = updates.layout
    partial = layout.update / f".download-{offer.version}.zip"
    try:
        download(url, headers, partial, context)
        staged = stage(
            layout,
            partial,
            offer.sha256,
            offer.signature,
            updates.release_key,
            updates.own_version,
            allow_downgrade=offer.allow_downgrade,
        )
    finally:
        partial.unlink(missing_ok=True)
    return staged.version


def unreported_result(updates: Updates) -> tuple[str, str, str] | None:
    """The launcher's last result as (version, state, reason) if the hub was not told yet."""
    layout = updates.layout
    result = layout.read_result()
    if result is None or result.get("status") not in _RESULT_STATES:
        return None
    with contextlib.suppress(OSError, ValueError):
        reported = (layout.update / _REPORTED).read_text()
        if reported.strip() == str(result.get("at")):
            return None
    reason = str(result.get("reason") or "")
    code = str(result.get("code") or "")
    state = "failed" if code == "install_failed" else _RESULT_STATES[str(result["status"])]
    if state == "installed":
        return str(result.get("version")), state, reason
    return str(result.get("version")), state, failed(f"{code or state}: {reason}")


def mark_reported(updates: Updates) -> None:
    result = updates.layout.read_result()
    if result is not None:
        (updates.layout.update / _REPORTED).write_text(str(result.get("at")))


def failed(detail: str) -> str:
    """``update_failed: <detail>``: the reason reported with ``failed`` or ``rolled_back``."""
    from protocol.release import failure_reason  # with cryptography: only when there is one to tell

    return failure_reason(detail)


def describe(exc: BaseException) -> str:
    """``update_failed: code: reason`` for the hub: a refusal's code, else what failed."""
    import urllib.error

    from protocol.release import ReleaseRefused

    if isinstance(exc, ReleaseRefused):
        return failed(str(exc))
    if isinstance(exc, urllib.error.HTTPError):
        return failed(f"download_failed: the hub answered {exc.code}")
    return failed(f"download_failed: {exc}")
