"""Agent settings: defaults < TOML file < environment (``MONITOR_AGENT_*``) < command-line flags."""

from __future__ import annotations

import os
import ssl
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from monitor_agent.errors import ConfigError
from monitor_agent.tls import client_context
from protocol.codec import describe

ENV_PREFIX = "MONITOR_AGENT_"
# The seed server's default token, so a fresh install talks to a fresh hub; a warning is logged.
DEV_TOKEN = "dev-token-123"  # noqa: S105 - a well-known development value, not a secret
WS_PATH = "/ws/agent"


class HostCommand(BaseModel):
    """A host command the operator allows by name: a fixed argv with ``{arg}`` placeholders."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    argv: list[str] = Field(min_length=1)
    timeout: float = Field(default=30.0, gt=0)
    max_output: int = Field(default=4096, ge=0)
    description: str = ""


def _reboot_argv() -> list[str]:
    if sys.platform == "win32":
        return ["shutdown", "/r", "/t", "0"]
    return ["shutdown", "-r", "now"]


def predefined_commands() -> dict[str, HostCommand]:
    """Host commands the agent knows but runs only when named in ``allow``."""
    return {"reboot": HostCommand(argv=_reboot_argv(), description="reboot the machine")}


def default_state_dir() -> Path:
    """Where the spool, journal and device id live when ``--state-dir`` is not given."""
    if sys.platform == "win32":
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "monitor-agent"
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/monitor-agent")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "monitor-agent"


class AgentConfig(BaseModel):
    """Every setting of one agent; built once at start and passed down."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server: str = "http://127.0.0.1:8000"
    token: str = DEV_TOKEN
    device_id: str | None = None
    interval: float = Field(default=5.0, gt=0)
    state_dir: Path = Field(default_factory=default_state_dir)
    transport: Literal["ws", "http"] = "ws"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    allow: list[str] = Field(default_factory=list)
    commands: dict[str, HostCommand] = Field(default_factory=dict)
    backoff_base: float = Field(default=1.0, gt=0)
    backoff_cap: float = Field(default=60.0, gt=0)
    auth_retry_delay: float = Field(default=60.0, gt=0)
    spool_max_samples: int = Field(default=50_000, ge=1)
    batch_size: int = Field(default=500, ge=1, le=1000)
    poll_interval: float | None = Field(default=None, gt=0)
    restart_mode: Literal["exec", "spawn"] = "exec"
    connect_timeout: float = Field(default=10.0, gt=0)
    ca_file: Path | None = None  # trust only this CA for https/wss (default: the system store)
    pin_sha256: list[str] = Field(default_factory=list)  # accepted certificate fingerprints

    @field_validator("pin_sha256", mode="before")
    @classmethod
    def _split_pins(cls, value: Any) -> Any:
        return [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("server")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in {"http", "https", "ws", "wss"} or not urlsplit(value).netloc:
            raise ValueError(f"expected an http(s):// or ws(s):// URL, got {value!r}")
        return value

    def ws_url(self) -> str:
        """The agent endpoint: ``http(s)://host/base`` becomes ``ws(s)://host/base/ws/agent``."""
        return _with_path(self.server, {"http": "ws", "https": "wss"}, WS_PATH)

    def http_url(self) -> str:
        """The REST base URL, whatever scheme ``server`` was given with."""
        return _with_path(self.server, {"ws": "http", "wss": "https"}, "").removesuffix("/")

    def host_commands(self) -> dict[str, HostCommand]:
        """Enabled host commands: everything under ``[commands]`` plus predefined ones in ``allow``."""
        known = {**predefined_commands(), **self.commands}
        missing = sorted(set(self.allow) - set(known))
        if missing:
            raise ConfigError(
                f"allow names {missing} but no such command is defined; add a "
                f"[commands.NAME] table with an argv, or use one of {sorted(known)}"
            )
        enabled = dict(self.commands)
        enabled.update({name: known[name] for name in self.allow})
        return enabled

    def ssl_context(self) -> ssl.SSLContext | None:
        """The verifying TLS context for an https/wss server (None for plain http/ws)."""
        if urlsplit(self.server).scheme not in {"https", "wss"}:
            if self.ca_file is not None or self.pin_sha256:
                raise ConfigError("ca_file and pin_sha256 need an https:// or wss:// server URL")
            return None
        return client_context(self.ca_file, self.pin_sha256)

    def effective_poll_interval(self) -> float:
        """How often the HTTP transport asks for commands."""
        return self.poll_interval if self.poll_interval is not None else self.interval


def _with_path(url: str, schemes: Mapping[str, str], suffix: str) -> str:
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if path.endswith(WS_PATH):
        path = path[: -len(WS_PATH)]
    scheme = schemes.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, path + suffix, parts.query, ""))


def read_toml(path: Path) -> dict[str, Any]:
    """Load the config file, naming the file in any error."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


_LIST_KEYS = frozenset({"allow", "pin_sha256"})


def from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings given as ``MONITOR_AGENT_<KEY>``; ``MONITOR_TOKEN`` is read as a fallback token."""
    values: dict[str, Any] = {}
    if "MONITOR_TOKEN" in environ:
        values["token"] = environ["MONITOR_TOKEN"]
    for key in AgentConfig.model_fields:
        raw = environ.get(ENV_PREFIX + key.upper())
        if raw is None or key == "commands":
            continue
        values[key] = [p.strip() for p in raw.split(",") if p.strip()] if key in _LIST_KEYS else raw
    return values


def load_config(
    flags: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> AgentConfig:
    """Merge file, environment and flags (``None`` flags mean "not given") and validate."""
    env = dict(os.environ if environ is None else environ)
    path = config_path or (Path(env[ENV_PREFIX + "CONFIG"]) if ENV_PREFIX + "CONFIG" in env else None)
    merged: dict[str, Any] = read_toml(path) if path is not None else {}
    env_values = from_env(env)
    extra_allow = list(merged.get("allow", [])) + list(env_values.pop("allow", []))
    merged.update(env_values)
    given = {k: v for k, v in flags.items() if v is not None and k != "allow"}
    merged.update(given)
    extra_allow += list(flags.get("allow") or [])
    if extra_allow:
        # allow accumulates across sources: the file enables some, a flag can enable more.
        merged["allow"] = sorted(set(extra_allow))
    try:
        config = AgentConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(f"invalid agent configuration: {describe(exc)}") from None
    config.host_commands()  # fail at start, not when the first command arrives
    config.ssl_context()  # likewise a missing CA file or a malformed pin
    if config.backoff_cap < config.backoff_base:
        raise ConfigError("backoff_cap must be >= backoff_base")
    return config
