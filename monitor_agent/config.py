"""Agent settings: defaults < TOML file < environment (``MONITOR_AGENT_*``) < command-line flags."""

from __future__ import annotations

import os
import re
import ssl
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

from monitor_agent.errors import ConfigError
from monitor_agent.tls import client_context
from protocol.frames import MAX_TAGS, TAG_PATTERN

ENV_PREFIX = "MONITOR_AGENT_"
# The seed server's default token, so a fresh install talks to a fresh hub; a warning is logged.
DEV_TOKEN = "dev-token-123"  # noqa: S105 - a well-known development value, not a secret
WS_PATH = "/ws/agent"

# Settings arrive typed (TOML, flags) or as text (environment); each check takes either and
# returns the typed value or raises ValueError. Plain functions rather than pydantic: the
# agent's memory budget has no room for it (docs/agent.md, Footprint).
Check = Callable[[Any], Any]


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _number(kind: Callable[[Any], float]) -> Callable[[Any], float]:
    def number(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            result = kind(value)
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
        if isinstance(value, float) and kind is int and result != value:
            raise ValueError(f"expected a whole number, got {value!r}")
        return result

    return number


def _at_least(
    kind: Callable[[Any], float], low: float, *, strict: bool = False, high: float | None = None
) -> Check:
    parse = _number(kind)

    def bounded(value: Any) -> float:
        result = parse(value)
        if result < low or (strict and result == low):
            raise ValueError(f"must be {'>' if strict else '>='} {low:g}, got {value!r}")
        if high is not None and result > high:
            raise ValueError(f"must be <= {high:g}, got {value!r}")
        return result

    return bounded


def _optional(check: Check) -> Check:
    def optional(value: Any) -> Any:
        return None if value is None else check(value)

    return optional


def _choice(*options: str, upper: bool = False) -> Check:
    def choice(value: Any) -> str:
        text = _text(value).upper() if upper else _text(value)
        if text not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {value!r}")
        return text

    return choice


def _path(value: Any) -> Path:
    if isinstance(value, Path):
        return value
    return Path(_text(value))


def _names(value: Any) -> list[str]:
    """A list of strings; a comma-separated string is split (pins from the environment)."""
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    if not isinstance(value, list | tuple):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return [_text(item) for item in value]


def _tags(value: Any) -> list[str]:
    """Tags the agent reports in hello: what the hub accepts (``protocol.frames.TAG_PATTERN``)."""
    tags = list(dict.fromkeys(_names(value)))
    if len(tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags, got {len(tags)}")
    if bad := [t for t in tags if not re.match(TAG_PATTERN, t)]:
        raise ValueError(
            f"tags are letters, digits and ._:/=- (64 at most, starting alphanumeric), got {bad}"
        )
    return tags


_TLS_SCHEMES = frozenset({"https", "wss"})


def _server(value: Any) -> str:
    """One hub URL, or several for failover: comma-separated text or a list (TOML array).

    Kept as one comma-joined string (``AgentConfig.servers()`` splits it). Every URL must be
    http(s) or ws(s); TLS and plain URLs are not mixed, so failing over never sends the
    credential in clear to a hub the first URL reached over TLS.
    """
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        items = [item.strip() for item in value]
    else:
        raise ValueError(f"expected a URL, or a list of URLs, got {value!r}")
    urls = list(dict.fromkeys(item for item in items if item))
    if not urls:
        raise ValueError("expected at least one http(s):// or ws(s):// URL")
    for position, url in enumerate(urls, 1):
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https", "ws", "wss"} or not parts.netloc:
            where = f" (URL {position} of {len(urls)})" if len(urls) > 1 else ""
            raise ValueError(f"expected an http(s):// or ws(s):// URL, got {url!r}{where}")
    secure = {urlsplit(url).scheme in _TLS_SCHEMES for url in urls}
    if len(secure) > 1:
        raise ValueError(
            f"mixes https/wss and plain http/ws URLs ({', '.join(public_url(u) for u in urls)}): "
            "a failover would send the credential in clear; use TLS for every hub or for none"
        )
    return ",".join(urls)


def public_url(url: str) -> str:
    """``url`` fit for a log line: no user:password@ and no query (either may carry a secret)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _apply(owner: object, checks: Mapping[str, Check]) -> None:
    """Check and convert every field of a frozen dataclass in place; one error names them all."""
    problems = []
    for name, check in checks.items():
        try:
            object.__setattr__(owner, name, check(getattr(owner, name)))
        except ConfigError as exc:  # a nested table (commands.NAME) names its own keys
            problems.append(str(exc))
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    if problems:
        raise ConfigError("; ".join(problems))


def _refuse_unknown(values: Mapping[str, Any], known: Iterable[str], where: str = "") -> None:
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError("; ".join(f"{where}{name}: unknown setting" for name in unknown))


def _argv(value: Any) -> list[str]:
    if isinstance(value, str):  # a string would be split on commas: insist on a list
        raise ValueError(f"expected a list of strings, got {value!r}")
    items = _names(value)
    if not items:
        raise ValueError("must not be empty")
    return items


@dataclass(frozen=True, slots=True, kw_only=True)
class HostCommand:
    """A host command the operator allows by name: a fixed argv with ``{arg}`` placeholders."""

    argv: list[str]
    timeout: float = 30.0
    max_output: int = 4096
    description: str = ""

    CHECKS: ClassVar[dict[str, Check]] = {
        "argv": _argv,
        "timeout": _at_least(float, 0, strict=True),
        "max_output": _at_least(int, 0),
        "description": _text,
    }

    def __post_init__(self) -> None:
        _apply(self, self.CHECKS)

    @classmethod
    def from_mapping(cls, name: str, values: Any) -> HostCommand:
        """A ``[commands.NAME]`` table; errors name ``commands.NAME.key``."""
        where = f"commands.{name}."
        if not isinstance(values, Mapping):
            raise ConfigError(f"commands.{name}: expected a table with an argv, got {values!r}")
        _refuse_unknown(values, cls.CHECKS, where)
        if "argv" not in values:
            raise ConfigError(f"{where}argv: field required")
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError("; ".join(where + part for part in str(exc).split("; "))) from None


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


def _commands(value: Any) -> dict[str, HostCommand]:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected [commands.NAME] tables, got {value!r}")
    return {
        name: spec if isinstance(spec, HostCommand) else HostCommand.from_mapping(name, spec)
        for name, spec in value.items()
    }


_POSITIVE = _at_least(float, 0, strict=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConfig:
    """Every setting of one agent; built once at start and passed down.

    Values given as text (the environment) are converted on construction; anything that
    does not fit raises ConfigError naming every bad key.
    """

    server: str = "http://127.0.0.1:8000"
    token: str = field(default=DEV_TOKEN, repr=False)  # kept out of logs and tracebacks
    device_id: str | None = None
    interval: float = 5.0
    state_dir: Path = field(default_factory=default_state_dir)
    transport: Literal["ws", "http"] = "ws"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    allow: list[str] = field(default_factory=list)
    commands: dict[str, HostCommand] = field(default_factory=dict)
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    auth_retry_delay: float = 60.0
    spool_max_samples: int = 50_000
    batch_size: int = 500
    poll_interval: float | None = None
    restart_mode: Literal["exec", "spawn"] = "exec"
    connect_timeout: float = 10.0
    ca_file: Path | None = None  # trust only this CA for https/wss (default: the system store)
    pin_sha256: list[str] = field(default_factory=list)  # accepted certificate fingerprints
    tags: list[str] = field(default_factory=list)  # reported in hello; shown and filtered on
    # Exchanged once for this device's credential (``monitor-agent enroll``, or at the first
    # ``run`` without a kept credential); from the environment or a file: argv is public.
    enrollment_token: str = field(default="", repr=False)
    enrollment_token_file: Path | None = None
    # The release public key (PEM file) updates must be signed with (``monitor-agent launch``).
    release_key: Path | None = None

    CHECKS: ClassVar[dict[str, Check]] = {
        "server": _server,
        "token": _text,
        "device_id": _optional(_text),
        "interval": _POSITIVE,
        "state_dir": _path,
        "transport": _choice("ws", "http"),
        "log_level": _choice("DEBUG", "INFO", "WARNING", "ERROR", upper=True),
        "log_format": _choice("text", "json"),
        "allow": _names,
        "commands": _commands,
        "backoff_base": _POSITIVE,
        "backoff_cap": _POSITIVE,
        "auth_retry_delay": _POSITIVE,
        "spool_max_samples": _at_least(int, 1),
        "batch_size": _at_least(int, 1, high=1000),
        "poll_interval": _optional(_POSITIVE),
        "restart_mode": _choice("exec", "spawn"),
        "connect_timeout": _POSITIVE,
        "ca_file": _optional(_path),
        "pin_sha256": _names,
        "tags": _tags,
        "enrollment_token": _text,
        "enrollment_token_file": _optional(_path),
        "release_key": _optional(_path),
    }

    def __post_init__(self) -> None:
        _apply(self, self.CHECKS)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> AgentConfig:
        """Build from merged sources, refusing keys that are not settings (typos)."""
        _refuse_unknown(values, cls.CHECKS)
        return cls(**values)

    def servers(self) -> list[str]:
        """Every hub URL, in the order the agent tries them (at least one)."""
        return self.server.split(",")

    def ws_urls(self) -> list[str]:
        """The agent endpoint of every hub: ``http(s)://host/base`` becomes ``ws(s)://host/base/ws/agent``."""
        return [_with_path(url, {"http": "ws", "https": "wss"}, WS_PATH) for url in self.servers()]

    def http_urls(self) -> list[str]:
        """The REST base URL of every hub, whatever scheme each was given with."""
        return [
            _with_path(url, {"ws": "http", "wss": "https"}, "").removesuffix("/") for url in self.servers()
        ]

    def ws_url(self) -> str:
        """The first hub's agent endpoint."""
        return self.ws_urls()[0]

    def http_url(self) -> str:
        """The first hub's REST base URL."""
        return self.http_urls()[0]

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
        """The verifying TLS context for https/wss servers (None for plain http/ws).

        ``server`` never mixes the two (checked on construction), so one answer serves every URL.
        """
        if urlsplit(self.servers()[0]).scheme not in _TLS_SCHEMES:
            if self.ca_file is not None or self.pin_sha256:
                raise ConfigError("ca_file and pin_sha256 need an https:// or wss:// server URL")
            return None
        return client_context(self.ca_file, self.pin_sha256)

    def enrollment_secret(self) -> str:
        """The enrollment token: given directly, else read from ``enrollment_token_file``; "" if none."""
        if self.enrollment_token.strip():
            return self.enrollment_token.strip()
        if self.enrollment_token_file is None:
            return ""
        try:
            return self.enrollment_token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"enrollment_token_file: cannot read {self.enrollment_token_file}: {exc}"
            ) from None

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
    import tomllib  # only with a config file: the agent's memory budget is tight

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
    for key in AgentConfig.CHECKS:
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
        config = AgentConfig.from_mapping(merged)
    except ConfigError as exc:
        raise ConfigError(f"invalid agent configuration: {exc}") from None
    config.host_commands()  # fail at start, not when the first command arrives
    config.ssl_context()  # likewise a missing CA file or a malformed pin
    if config.backoff_cap < config.backoff_base:
        raise ConfigError("backoff_cap must be >= backoff_base")
    return config
