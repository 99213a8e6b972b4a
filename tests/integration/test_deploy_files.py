"""The Dockerfile and compose.yaml: linted, schema-valid, and shaped as the operations guide says."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from monitor_server.settings import Settings
from tests import deployment as d

SECRET_WORDS = re.compile(r"TOKEN|SECRET|PASSWORD|KEY", re.IGNORECASE)


def tool(name: str) -> str:
    """A console script from the test extras: next to this interpreter, else on PATH; never skipped."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is missing: pip install -e '.[test]'"
    return found


def test_hadolint_finds_nothing() -> None:
    """hadolint passes the Dockerfile at every severity, info included."""
    result = subprocess.run(
        [tool("hadolint"), "--no-color", "--failure-threshold", "info", str(d.DOCKERFILE)],
        cwd=d.REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_matches_the_compose_specification() -> None:
    """compose.yaml validates against shared/schemas/compose-spec.json (required in CI)."""
    if not d.COMPOSE_SCHEMA.exists():
        assert not os.environ.get("CI"), f"{d.COMPOSE_SCHEMA} is missing: CI must check compose.yaml"
        pytest.skip(f"{d.COMPOSE_SCHEMA} is not beside this clone")  # local clones without shared/
    result = subprocess.run(
        [tool("check-jsonschema"), "--schemafile", str(d.COMPOSE_SCHEMA), str(d.COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_is_multi_stage_slim_pinned_and_installs_a_wheel() -> None:
    """An official slim Python base with a pinned version; the final stage installs the built wheel."""
    builder, final = d.stages()[0], d.runtime()
    assert len(d.stages()) >= 2
    for stage in (builder, final):
        assert re.fullmatch(r"python:3\.1[1-9]\.\d+-slim(-\w+)?", stage.base), stage.base
    assert any("wheel" in run for run in builder.all("RUN"))
    installs = [run for run in final.all("RUN") if "pip install" in run]
    assert installs and all(".whl" in run and "from=builder" in run for run in installs)
    assert not final.all("COPY") or all("--from=builder" in c for c in final.all("COPY"))


def test_image_runs_as_non_root_with_data_volume_port_and_healthcheck() -> None:
    """USER is a numeric non-root id; /data is the volume; 8000 exposed; the hub binds 0.0.0.0."""
    final = d.runtime()
    user = final.last("USER")
    assert user is not None and re.fullmatch(r"[1-9]\d*(:\d+)?", user), user
    assert final.last("VOLUME") == '["/data"]'
    assert final.last("EXPOSE") == "8000"
    env = d.image_env(final)
    assert env["MONITOR_HOST"] == "0.0.0.0" and env["MONITOR_PORT"] == "8000"
    assert env["MONITOR_DB"] == "/data/monitor.db" and env["MONITOR_DATA_DIR"] == "/data"
    assert "/health" in " ".join(d.healthcheck_command(final))
    assert d.image_command(final) == ["monitor-server"]


def test_no_secret_is_baked_into_the_image() -> None:
    """No ENV or ARG carries a token, secret, password or key; the token comes at run time."""
    for stage in d.stages():
        for keyword in ("ENV", "ARG"):
            for args in stage.all(keyword):
                names = [pair.partition("=")[0] for pair in args.split()]
                assert not [n for n in names if SECRET_WORDS.search(n)], f"{keyword} {args}"


def test_build_context_holds_what_the_builder_copies_and_nothing_secret() -> None:
    """.dockerignore lets every COPY source through and keeps .env, data/ and .git out."""
    patterns = d.dockerignore_patterns()
    sources = [
        arg for copy in d.stages()[0].all("COPY") for arg in copy.split()[:-1] if not arg.startswith("--")
    ]
    assert sources
    for source in sources:
        assert (d.REPO / source).exists(), source
        assert d.dockerignore_allows(source, patterns), source
    for private in (".env", "data/monitor.db", ".git/config", ".venv/bin/python", "tests/conftest.py"):
        assert not d.dockerignore_allows(private, patterns), private


def test_compose_hub_has_volume_port_healthcheck_restart_and_requires_a_token() -> None:
    """The hub service: named volume on /data, port 8000 published, healthcheck, restart, token required."""
    config = d.compose({"MONITOR_TOKEN": "t" * 32})
    hub = config["services"]["hub"]
    volume, _, target = hub["volumes"][0].partition(":")
    assert target == "/data" and volume in config["volumes"]
    assert any(str(port).endswith(":8000") for port in hub["ports"])
    assert hub["healthcheck"]["test"][0] == "CMD" and "/health" in " ".join(hub["healthcheck"]["test"])
    assert hub["restart"] in {"unless-stopped", "always"}
    assert d.service_environment(hub)["MONITOR_TOKEN"] == "t" * 32
    for unset in ({}, {"MONITOR_TOKEN": ""}):
        with pytest.raises(d.MissingVariable, match=r"MONITOR_TOKEN.*\.env"):
            d.compose(unset)


def test_compose_demo_profile_runs_an_agent_and_a_sized_simulator() -> None:
    """The demo profile adds one real agent and `monitor-agent simulate --count ${SIM_AGENTS}`."""
    env = {"MONITOR_TOKEN": "t" * 32}
    services = d.compose(env)["services"]
    assert "profiles" not in services["hub"]
    for name in ("agent", "simulator"):
        assert services[name]["profiles"] == ["demo"]
        assert services[name]["depends_on"]["hub"]["condition"] == "service_healthy"
        assert "http://hub:8000" in services[name]["command"]
    assert services["agent"]["command"][0] == "monitor-agent"
    simulate = services["simulator"]["command"]
    assert simulate[:2] == ["monitor-agent", "simulate"]
    assert simulate[simulate.index("--count") + 1] == "50"
    sized = d.compose({**env, "SIM_AGENTS": "500"})["services"]["simulator"]["command"]
    assert sized[sized.index("--count") + 1] == "500"


def test_env_example_names_every_variable_compose_reads() -> None:
    """.env.example documents each ${VAR} in compose.yaml, with MONITOR_TOKEN left empty."""
    used = set(re.findall(r"\$\{(\w+)", d.COMPOSE.read_text()))
    example = (d.REPO / ".env.example").read_text()
    documented = dict(
        line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#")
    )
    assert used <= set(documented), used - set(documented)
    assert documented["MONITOR_TOKEN"] == ""


def test_operations_guide_lists_every_hub_setting() -> None:
    """docs/operations.md's settings table names each MONITOR_* variable the hub reads."""
    guide = (d.REPO / "docs" / "operations.md").read_text()
    missing = [
        f"MONITOR_{name.upper()}"
        for name in Settings.model_fields
        if f"`MONITOR_{name.upper()}`" not in guide
    ]
    assert not missing, missing


def test_every_monitor_variable_compose_and_image_set_is_a_real_setting() -> None:
    """No typo in a MONITOR_* name: each one set by the image or the hub service is a hub setting."""
    known = {f"MONITOR_{name.upper()}" for name in Settings.model_fields}
    hub_env = d.service_environment(d.compose({"MONITOR_TOKEN": "t" * 32})["services"]["hub"])
    names = [n for n in [*d.image_env(d.runtime()), *hub_env] if n.startswith("MONITOR_")]
    assert names and set(names) <= known, set(names) - known


SCALE = ("postgres", "hub-a", "hub-b", "balancer")


def test_compose_scale_profile_runs_two_hubs_on_postgres_behind_haproxy() -> None:
    """Profile scale: postgres:16 (volume, pg_isready), hub-a/hub-b (the hub's image, on it), HAProxy."""
    env = {"MONITOR_TOKEN": "t" * 32, "POSTGRES_PASSWORD": "p" * 24}
    config = d.compose(env)
    services = config["services"]
    for name in SCALE:
        assert services[name]["profiles"] == ["scale"], name
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:16")
    assert d.service_environment(postgres)["POSTGRES_PASSWORD"] == "p" * 24
    volume, _, target = postgres["volumes"][0].partition(":")
    assert volume in config["volumes"] and target == "/var/lib/postgresql/data"
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert "ports" not in postgres  # only the hubs reach it
    for name in ("hub-a", "hub-b"):
        hub = services[name]
        assert (hub["image"], hub["build"]) == (services["hub"]["image"], services["hub"]["build"])
        assert d.service_command(hub, d.runtime()) == ["monitor-server"]
        hub_env = d.service_environment(hub)
        assert hub_env["MONITOR_DB"] == f"postgresql://monitor:{'p' * 24}@postgres:5432/monitor"
        assert hub_env["MONITOR_TOKEN"] == "t" * 32
        assert hub["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert set(hub_env) <= {f"MONITOR_{n.upper()}" for n in Settings.model_fields}
    balancer = services["balancer"]
    assert balancer["image"] == "haproxy:2.9"
    assert set(balancer["depends_on"]) == {"hub-a", "hub-b"}
    assert any(str(port).endswith(":8000") for port in balancer["ports"])
    source, target, mode = balancer["volumes"][0].split(":")
    assert (target, mode) == ("/usr/local/etc/haproxy/haproxy.cfg", "ro")
    assert (d.REPO / source).resolve() == d.REPO / "docs" / "deploy" / "haproxy.cfg"


def test_the_balancer_config_checks_both_hubs_over_tcp() -> None:
    """docs/deploy/haproxy.cfg: TCP mode on :8000, both hubs checked on /health, 1 h tunnels."""
    text = (d.REPO / "docs" / "deploy" / "haproxy.cfg").read_text()
    lines = [line.split("#")[0].split() for line in text.splitlines()]
    lines = [words for words in lines if words]
    servers = {words[1]: words[2] for words in lines if words[0] == "server"}
    assert servers == {"hub-a": "hub-a:8000", "hub-b": "hub-b:8000"}
    assert ["mode", "tcp"] in lines and ["bind", ":8000"] in lines
    assert ["option", "httpchk"] in lines and ["timeout", "tunnel", "1h"] in lines
    assert any(words[:2] == ["http-check", "send"] and "/health" in words for words in lines)
    assert any(words[0] == "default-server" and "check" in words for words in lines)


def test_the_default_services_need_no_scale_variable() -> None:
    """Without POSTGRES_PASSWORD, the hub and the demo profile resolve exactly as before."""
    services = d.compose({"MONITOR_TOKEN": "t" * 32})["services"]
    assert "profiles" not in services["hub"] and "depends_on" not in services["hub"]
    assert d.service_environment(services["hub"])["MONITOR_TOKEN"] == "t" * 32
