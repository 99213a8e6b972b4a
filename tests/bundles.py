"""Release bundles of this tree for the update tests, built once per pytest session.

Two releases, signed with one key pair: 0.2.0 (good), made by ``monitor-agent bundle`` from a copy
of this tree that says it is 0.2.0, and 0.3.0 (broken: ``run`` exits at once) from the same wheels
with the project's wheel rewritten. Building takes 8 to 15 s (``pip wheel`` of the project and its
dependencies), and three modules use the same bundles (test_agent_update, test_ota_hub,
test_ota_hub_faults): ``release_bundles`` keeps them in the session's temporary folder, under a
name made of the two versions, and builds them only the first time a session asks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from monitor_server.releases_cli import keygen, signature_of
from protocol.release import extract_wheels, manifest_for, write_bundle
from tests.timing import t

REPO = Path(__file__).resolve().parents[1]
GOOD, BROKEN = "0.2.0", "0.3.0"


@dataclass(frozen=True)
class Signed:
    path: Path
    version: str
    sha256: str
    signature: str


@dataclass(frozen=True)
class Releases:
    key: Path  # release.key
    pub: Path  # release.pub
    good: Signed
    broken: Signed


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=t(300), check=False, **kwargs)


def _source(dest: Path, version: str) -> Path:
    """A copy of this tree that says it is ``version``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("protocol", "monitor_agent", "monitor_server"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, dest / name)
    for path, pattern in (
        (dest / "pyproject.toml", r'^version = ".*"$'),
        (dest / "monitor_agent" / "__init__.py", r'^__version__ = ".*"$'),
    ):
        text, count = re.subn(
            pattern, pattern.split(" = ")[0].lstrip("^") + f' = "{version}"', path.read_text(), flags=re.M
        )
        assert count == 1, path
        path.write_text(text)
    return dest


def sign_bundle(bundle: Path, key: Path) -> Signed:
    body = signature_of(bundle, key)
    return Signed(bundle, body["version"], body["sha256"], body["signature"])


def _rebuilt_wheel(wheel: Path, dest: Path, version: str) -> Path:
    """``wheel`` (the project's) as ``version`` whose ``run`` exits at once: a release broken at start.

    Rewritten rather than rebuilt (a build takes seconds): the files, the .dist-info folder's name,
    METADATA's version and RECORD's hashes, as pip expects them.
    """
    old = wheel.name.split("-")[1]
    out = dest / wheel.name.replace(f"-{old}-", f"-{version}-")
    head = "def _run(args: argparse.Namespace) -> int:\n"
    files: dict[str, bytes] = {}
    with zipfile.ZipFile(wheel) as source:
        for name in source.namelist():
            data = source.read(name)
            name = name.replace(f"monitor-{old}.dist-info/", f"monitor-{version}.dist-info/")
            if name == "monitor_agent/__init__.py":
                data = data.replace(f'__version__ = "{old}"'.encode(), f'__version__ = "{version}"'.encode())
            elif name == "monitor_agent/cli.py":
                assert head.encode() in data, "monitor_agent/cli.py no longer has the line to break"
                data = data.replace(
                    head.encode(), (head + '    raise SystemExit("broken release")\n').encode()
                )
            elif name.endswith(".dist-info/METADATA"):
                data = data.replace(f"\nVersion: {old}\n".encode(), f"\nVersion: {version}\n".encode())
            files[name] = data
    record = next(name for name in files if name.endswith(".dist-info/RECORD"))
    lines = []
    for name, data in files.items():
        if name != record:
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            lines.append(f"{name},sha256={digest},{len(data)}")
    files[record] = ("\n".join([*lines, f"{record},,"]) + "\n").encode()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in files.items():
            target.writestr(name, data)
    return out


def release_bundles(factory: pytest.TempPathFactory) -> Releases:
    """The key pair and both bundles, signed: built at the session's first call, then read back."""
    root = factory.getbasetemp() / f"release-bundles-{GOOD}-{BROKEN}"
    done = root / "built.json"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)  # a build that failed half way in this session
        root.mkdir()
        _build(root)
        done.write_text(json.dumps({"good": GOOD, "broken": BROKEN}))
    key = root / "keys" / "release.key"
    good, broken = root / f"agent-{GOOD}.zip", root / f"agent-{BROKEN}.zip"
    return Releases(key, root / "keys" / "release.pub", sign_bundle(good, key), sign_bundle(broken, key))


def _build(root: Path) -> None:
    """A key pair, the good bundle (``monitor-agent bundle``) and the broken one, under ``root``."""
    keygen(root / "keys")
    good = root / f"agent-{GOOD}.zip"
    source = _source(root / "good", GOOD)
    built = run(
        [sys.executable, "-m", "monitor_agent", "bundle", "--out", str(good), "--source", str(source)]
    )
    assert built.returncode == 0, built.stderr
    # The broken release: the good one's wheels, the project's rewritten as 0.3.0.
    unpacked, wheels = root / "unpacked", root / "broken-wheels"
    manifest = extract_wheels(good, unpacked)
    wheels.mkdir()
    for wheel in manifest.wheels:
        if wheel.name.startswith("monitor-"):
            _rebuilt_wheel(unpacked / wheel.name, wheels, BROKEN)
        else:
            shutil.copy(unpacked / wheel.name, wheels / wheel.name)
    broken = root / f"agent-{BROKEN}.zip"
    write_bundle(
        broken, manifest_for(wheels, BROKEN, manifest.python, manifest.platform, manifest.created_at), wheels
    )
