"""``monitor-agent bundle --out FILE``: a release of this agent for the platform it runs on.

``pip wheel`` builds the project's wheel and collects a wheel of every dependency (from the
configured package index or pip's cache) into a temporary folder; the bundle is those wheels and
a manifest naming each with its SHA-256 (format: ``protocol/release.py``). The agent installs it
later with ``pip install --no-index``: nothing is fetched on the machine being updated.

The project comes from ``--source`` (a source tree, a wheel or a requirement), else from the
source tree this agent runs from, else from where its distribution was installed from
(``direct_url.json``), else ``monitor==<version>`` from the index.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlsplit

from monitor_agent.update.install import DISTRIBUTION, this_platform
from protocol.release import Manifest, manifest_for, write_bundle

BUILD_TIMEOUT = 900.0


def project_source() -> str:
    """What ``pip wheel`` should build for this agent (see the module docstring)."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "monitor_agent").is_dir():
        return str(root)
    try:
        raw = metadata.distribution(DISTRIBUTION).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        raw = None
    if raw:
        url = json.loads(raw).get("url", "")
        if url.startswith("file://"):
            return unquote(urlsplit(url).path)
    from monitor_agent import __version__

    return f"{DISTRIBUTION}=={__version__}"


def build_bundle(out: Path, source: str | None = None) -> Manifest:
    """Build the wheels of ``source`` and its dependencies and write them with a manifest to ``out``."""
    source = source or project_source()
    if Path(source).exists():
        source = str(Path(source).resolve())  # pip reads a bare "src" as a project name
    with tempfile.TemporaryDirectory(prefix="monitor-bundle-") as tmp:
        wheels = Path(tmp)
        argv = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels)]
        done = subprocess.run(  # noqa: S603 - our own interpreter's pip
            [*argv, source],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"pip wheel failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        manifest = manifest_for(
            wheels,
            _project_version(wheels),
            *this_platform(),
            created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        write_bundle(out, manifest, wheels)
    return manifest


def _project_version(wheels: Path) -> str:
    """The version in the project's wheel name (``monitor-0.2.0-py3-none-any.whl``)."""
    found = sorted(wheels.glob(f"{DISTRIBUTION}-*.whl"))
    if len(found) != 1:
        raise RuntimeError(f"expected one {DISTRIBUTION} wheel, pip built {[p.name for p in found]}")
    return found[0].name.split("-")[1]
