"""The agent installs alone: ``pip install`` of the wheel, without the ``hub`` extra, into a fresh
virtualenv brings psutil, websockets and cryptography and nothing of the hub, and that agent
reports to a hub."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from protocol.release import read_manifest
from tests import deployment as d
from tests.agentd import device, eventually
from tests.hubs import RunningHub
from tests.timing import t

# What an agent-only install may hold besides pip and setuptools: the agent's libraries, and
# cryptography (release signatures, DESIGN §12) with the cffi and pycparser it depends on.
AGENT_ONLY = {"monitor", "psutil", "websockets", "cryptography", "cffi", "pycparser"}
HUB_LIBRARIES = {"starlette", "uvicorn", "aiosqlite", "pydantic", "msgspec", "orjson", "argon2-cffi"}


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=t(600), check=False, **kwargs)  # type: ignore[call-overload, no-any-return]


@pytest.fixture(scope="module")
def agent_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This tree's wheel installed the way a machine to watch installs it: no extra."""
    root = tmp_path_factory.mktemp("agent-install")
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(root), str(d.REPO)])
    assert built.returncode == 0, built.stderr
    (wheel,) = root.glob("monitor-*.whl")
    venv = root / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)]).returncode == 0
    installed = _run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", str(wheel)]
    )
    assert installed.returncode == 0, installed.stderr
    return venv


def _installed(venv: Path) -> set[str]:
    listed = _run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"])
    return {line.split("==")[0].lower() for line in listed.stdout.splitlines() if line}


def test_an_agent_install_holds_the_agent_and_its_libraries(agent_venv: Path) -> None:
    """Nothing of the hub comes with it; the hub's command says how to get the hub."""
    extra = _installed(agent_venv) - {"pip", "setuptools"}
    assert extra == AGENT_ONLY, extra
    assert not extra & HUB_LIBRARIES
    help_text = _run([str(agent_venv / "bin" / "monitor-agent"), "--help"])
    assert help_text.returncode == 0 and "run" in help_text.stdout, help_text.stderr
    hub = _run([str(agent_venv / "bin" / "monitor-server")])
    assert hub.returncode != 0 and "pip install 'monitor[hub]'" in hub.stderr, hub.stderr


async def test_the_agent_only_install_reports_to_a_hub(
    agent_venv: Path, hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """``monitor-agent run`` from that install connects, says hello and its samples are stored."""
    argv = [
        str(agent_venv / "bin" / "monitor-agent"),
        "run",
        "--server",
        hub.http_url,
        "--token",
        hub.token,
        "--device-id",
        "alone-1",
        "--state-dir",
        str(tmp_path / "state"),
        "--interval",
        "0.5",
    ]
    with (tmp_path / "agent.log").open("wb") as log:
        agent = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:

        async def reported() -> bool:
            entry = await device(api, "alone-1")
            return bool(entry and entry["online"] and entry["last_payload"])

        await eventually(reported, within=20, what="the agent-only install online with a sample")
    finally:
        agent.terminate()
        agent.wait(t(10))


def test_the_agent_only_install_builds_a_bundle_of_itself(agent_venv: Path, tmp_path: Path) -> None:
    """`monitor-agent bundle` away from a source tree: the wheel it was installed from, and its libraries."""
    out = tmp_path / "agent.zip"
    built = _run([str(agent_venv / "bin" / "monitor-agent"), "bundle", "--out", str(out)], cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    manifest = read_manifest(out)
    names = {wheel.name.split("-")[0].lower() for wheel in manifest.wheels}
    assert names == AGENT_ONLY, names
    assert manifest.version == "0.1.0"
