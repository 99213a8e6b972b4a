"""What the container runs, without Docker: the built wheel in a fresh virtualenv, started with the
Dockerfile's command and environment and compose.yaml's service settings (only port and /data moved)."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests import deployment as d
from tests.agentd import command, device, enqueue, eventually
from tests.timing import t

CONTAINER_DATA = "/data"


@pytest.fixture(scope="session")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The builder stage (its COPY sources -> a wheel) and the runtime stage (wheel -> fresh venv)."""
    root = tmp_path_factory.mktemp("image")
    context = root / "src"
    for copy in d.stages()[0].all("COPY"):
        *sources, dest = [arg for arg in copy.split() if not arg.startswith("--")]
        for source in sources:
            _copy(
                d.REPO / source, context / dest / Path(source).name if dest.endswith("/") else context / dest
            )
    wheels = root / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheels), str(context)])
    (wheel,) = wheels.glob("monitor-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    # As the runtime stage does: the wheel with the hub's extra.
    _run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", f"{wheel}[hub]"]
    )
    return venv


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=t(600), check=False)
    assert result.returncode == 0, f"{argv}\n{result.stdout}\n{result.stderr}"


class Container:
    """One service's process as the image would run it: its command, env, workdir and log."""

    def __init__(self, venv: Path, service: Mapping[str, Any] | None, data: Path, port: int) -> None:
        stage = d.runtime()
        self.data = data
        env = {**d.image_env(stage), **(d.service_environment(service) if service else {})}
        # Only what a container gets from `-p` and `-v` moves: the port and the /data volume.
        env = {key: _moved(value, data) for key, value in env.items()}
        env["MONITOR_PORT"] = str(port)
        self.env = {
            **env,
            "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(data),
            "LANG": "C.UTF-8",
        }
        argv = d.service_command(service, stage) if service else d.image_command(stage)
        self.argv = [self._resolve(argv[0]), *argv[1:]]
        self.workdir = _moved(stage.last("WORKDIR") or "/", data)
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data.parent / f"{data.name}.log"

    def _resolve(self, program: str) -> str:
        found = shutil.which(program, path=self.env["PATH"].split(os.pathsep)[0])
        assert found, f"{program} is not installed by the wheel"
        return found

    def start(self, *replace: tuple[str, str]) -> None:
        argv = [_replace(arg, replace) for arg in self.argv]
        self.data.mkdir(parents=True, exist_ok=True)
        Path(self.workdir).mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, env=self.env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """`docker stop`: SIGTERM, then the exit status (the grace period is compose's 10 s)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=t(10))

    def stop_hub(self) -> None:
        """SIGTERM ends the hub after a graceful shutdown with exit status 0."""
        assert self.stop() == 0
        assert self.log().rstrip().endswith(f"Finished server process [{self.proc.pid}]"), self.log()  # type: ignore[union-attr]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    async def wait_healthy(self) -> None:
        async with httpx.AsyncClient() as client:

            async def up() -> bool:
                assert self.proc is not None and self.proc.poll() is None, f"exited:\n{self.log()}"
                try:
                    return (await client.get(f"http://127.0.0.1:{self.port}/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(up, within=20, what="/health answers")

    def run_check(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        """A healthcheck command run inside the 'container' (same env)."""
        return subprocess.run(
            [self._resolve(argv[0]), *argv[1:]],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=t(10),
            check=False,
        )


def _moved(value: str, data: Path) -> str:
    if value == CONTAINER_DATA or value.startswith(CONTAINER_DATA + "/"):
        return str(data) + value[len(CONTAINER_DATA) :]
    return value


def _replace(arg: str, pairs: tuple[tuple[str, str], ...]) -> str:
    for old, new in pairs:
        arg = arg.replace(old, new)
    return arg


@pytest.fixture
def containers() -> Iterator[list[Container]]:
    """Every container started by the test is killed at the end, whatever happened."""
    started: list[Container] = []
    yield started
    for container in started:
        container.kill()


async def test_compose_services_serve_health_presence_and_commands(
    image_venv: Path, tmp_path: Path, containers: list[Container]
) -> None:
    """compose's hub, demo agent and simulator from the wheel: health checks, agents online, echo acked."""
    token = secrets.token_urlsafe(32)
    services = d.compose({"MONITOR_TOKEN": token, "SIM_AGENTS": "3"})["services"]
    hub = Container(image_venv, services["hub"], tmp_path / "hub-data", d.free_port())
    containers.append(hub)
    hub.start()
    await hub.wait_healthy()

    listening = [
        c.laddr
        for c in psutil.Process(hub.proc.pid).net_connections("tcp")  # type: ignore[union-attr]
        if c.status == psutil.CONN_LISTEN
    ]
    assert [(addr.ip, addr.port) for addr in listening] == [("0.0.0.0", hub.port)]
    for check in (d.healthcheck_command(d.runtime()), services["hub"]["healthcheck"]["test"][1:]):
        result = hub.run_check(check)
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "hub-data" / "monitor.db").exists()

    agent = Container(image_venv, services["agent"], tmp_path / "agent-data", hub.port)
    containers.append(agent)
    agent.start(("http://hub:8000", f"http://127.0.0.1:{hub.port}"))
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{hub.port}", headers={"X-Auth-Token": token}
    ) as api:

        async def online() -> dict[str, Any] | None:
            assert agent.proc is not None and agent.proc.poll() is None, f"agent exited:\n{agent.log()}"
            entry = await device(api, "demo-agent")
            return entry if entry is not None and entry["online"] else None

        entry = await eventually(online, within=20, what="the demo agent online")
        assert entry["connection"] == "ws"
        cid = await enqueue(api, "demo-agent", "echo", {"from": "compose"})

        async def acked() -> dict[str, Any] | None:
            found = await command(api, "demo-agent", cid)
            return found if found["status"] == "acked" else None

        done = await eventually(acked, what="echo acknowledged")
        assert done["success"] is True and done["result"]["args"] == {"from": "compose"}
        assert (tmp_path / "agent-data" / "agent").is_dir()  # MONITOR_AGENT_STATE_DIR on its volume
        # The documented online backup, as `docker compose exec hub monitor-server backup ...` runs it.
        backup = hub.run_check(["monitor-server", "backup", str(tmp_path / "hub-data" / "backup.db")])
        assert backup.returncode == 0 and "integrity ok" in backup.stdout, backup.stderr

        assert agent.stop() == 0

        simulator = Container(image_venv, services["simulator"], tmp_path / "sim-data", hub.port)
        containers.append(simulator)
        simulator.start(("http://hub:8000", f"http://127.0.0.1:{hub.port}"))

        async def fleet() -> list[str]:
            assert simulator.proc is not None and simulator.proc.poll() is None, simulator.log()
            found = [
                e["device_id"]
                for e in (await api.get("/devices")).json()
                if e["device_id"].startswith("sim-") and e["online"]
            ]
            return found if len(found) == 3 else []

        await eventually(fleet, within=20, what="SIM_AGENTS=3 simulated agents online")
        assert simulator.stop() == 0, simulator.log()
        hub.stop_hub()
    logs = hub.log() + agent.log() + simulator.log()
    assert "Traceback" not in logs, logs


async def test_first_start_without_a_token_generates_one_and_keeps_it(
    image_venv: Path, tmp_path: Path, containers: list[Container]
) -> None:
    """`docker run` with no MONITOR_TOKEN: a token is printed once, kept in /data/token (0600), reused."""
    hub = Container(image_venv, None, tmp_path / "data", d.free_port())
    containers.append(hub)
    assert not any("TOKEN" in key for key in hub.env)
    hub.start()
    await hub.wait_healthy()
    printed = re.search(r"Generated an API token \(kept in (\S+)\):\s+(\S+)", hub.log())
    assert printed, hub.log()
    token_file = tmp_path / "data" / "token"
    assert printed.group(1) == str(token_file)
    assert token_file.read_text().strip() == printed.group(2)
    assert token_file.stat().st_mode & 0o777 == 0o600
    await _token_works(hub.port, printed.group(2))
    hub.stop_hub()

    hub.start()  # the restarted container finds the token on its volume and prints nothing new
    await hub.wait_healthy()
    await _token_works(hub.port, printed.group(2))
    assert hub.log().count("Generated an API token") == 1


async def _token_works(port: int, token: str) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api:
        assert (await api.get("/devices", headers={"X-Auth-Token": token})).status_code == 200
        assert (await api.get("/devices", headers={"X-Auth-Token": "wrong"})).status_code == 401


def test_wheel_carries_both_console_scripts_and_the_dashboard_files(image_venv: Path) -> None:
    """The image gets monitor-server and monitor-agent, and package data survives the wheel build."""
    bin_dir = image_venv / "bin"
    for script in ("monitor-server", "monitor-agent"):
        result = subprocess.run(
            [str(bin_dir / script), "--version"], capture_output=True, text=True, timeout=t(30), check=False
        )
        assert result.returncode == 0 and script in result.stdout + result.stderr, result
    site = next((image_venv / "lib").glob("python3*/site-packages"))
    for package in ("protocol", "monitor_server", "monitor_agent"):
        assert (site / package / "py.typed").exists(), package
    assert not (site / "tests").exists()


async def test_deployed_hub_stops_cleanly_on_sigterm_within_the_grace_period(
    image_venv: Path, tmp_path: Path, containers: list[Container]
) -> None:
    """`docker stop` sends SIGTERM; the hub exits 0 well inside compose's stop_grace_period."""
    hub = Container(image_venv, None, tmp_path / "data", d.free_port())
    hub.env["MONITOR_TOKEN"] = secrets.token_urlsafe(32)
    containers.append(hub)
    hub.start()
    await hub.wait_healthy()
    loop = asyncio.get_running_loop()
    started = loop.time()
    hub.stop_hub()
    assert loop.time() - started < t(5)
    assert "Application shutdown complete" in hub.log()
