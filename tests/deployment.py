"""Read the Dockerfile and compose.yaml the way Docker does, so tests run exactly what they declare.

Only the subset of both formats this project uses: exec-form CMD/ENTRYPOINT/HEALTHCHECK,
``ENV key=value`` pairs, line continuations, and Compose's ``${VAR}`` interpolation forms.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "compose.yaml"
# The Compose specification's schema lives beside the clone (shared/ is not part of the repository).
COMPOSE_SCHEMA = REPO.parent / "shared" / "schemas" / "compose-spec.json"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


def instructions(text: str) -> list[tuple[str, str]]:
    """``(KEYWORD, arguments)`` pairs, comments dropped and continuation lines joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        result.append((keyword.upper(), args.strip()))
        pending = ""
    return result


def stages(text: str | None = None) -> list[Stage]:
    """The build stages in order, with global ``ARG`` defaults substituted into ``FROM``."""
    found: list[Stage] = []
    args: dict[str, str] = {}
    for keyword, rest in instructions(DOCKERFILE.read_text() if text is None else text):
        if keyword == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), words[0])
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(len(found))
            found.append(Stage(name, base))
        elif not found and keyword == "ARG":
            key, _, default = rest.partition("=")
            args[key] = default
        elif found:
            found[-1].instructions.append((keyword, rest))
    return found


def runtime() -> Stage:
    """The final stage: what the image runs."""
    return stages()[-1]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def image_env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.all("ENV"):
        for pair in shlex.split(args):
            key, sep, value = pair.partition("=")
            assert sep, f"ENV {args!r}: use the key=value form"
            env[key] = value
    return env


def image_command(stage: Stage) -> list[str]:
    entrypoint = stage.last("ENTRYPOINT")
    cmd = stage.last("CMD")
    return (exec_form(entrypoint) if entrypoint else []) + (exec_form(cmd) if cmd else [])


def healthcheck_command(stage: Stage) -> list[str]:
    """The exec-form command of ``HEALTHCHECK [options] CMD [...]``."""
    args = stage.last("HEALTHCHECK")
    assert args is not None, "the image has no HEALTHCHECK"
    _, sep, command = args.partition(" CMD ")
    assert sep, f"HEALTHCHECK {args!r}: expected options then CMD [...]"
    return exec_form(command.strip())


class MissingVariable(Exception):
    """Compose's ``${VAR:?message}`` with VAR unset or empty: compose refuses to start."""


_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>\w+)")


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's variable substitution, applied to every string in a loaded YAML value."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: _substitute(m, env), value)
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    return value


def _substitute(match: re.Match[str], env: Mapping[str, str]) -> str:
    if match.group(0) == "$$":
        return "$"
    name = match.group("name") or match.group("bare")
    op, arg = match.group("op"), match.group("arg") or ""
    current = env.get(name)
    missing = current is None or (current == "" and op is not None and op.startswith(":"))
    if op in (":-", "-"):
        return arg if missing else str(current)
    if op in (":?", "?") and missing:
        raise MissingVariable(f"required variable {name} is missing a value: {arg}")
    return current or ""


def compose(env: Mapping[str, str]) -> dict[str, Any]:
    """compose.yaml with ``env`` substituted, as ``docker compose config`` would see it."""
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    result: dict[str, Any] = interpolate(loaded, env)
    return result


def service_environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def service_command(service: Mapping[str, Any], stage: Stage) -> list[str]:
    """The service's command (exec form), or the image's when the service does not set one."""
    command = service.get("command")
    if command is None:
        return image_command(stage)
    assert isinstance(command, list), "use the exec (list) form for commands in compose.yaml"
    entrypoint = stage.last("ENTRYPOINT")
    return (exec_form(entrypoint) if entrypoint else []) + [str(part) for part in command]


def dockerignore_allows(path: str, patterns: list[str]) -> bool:
    """Whether ``path`` reaches the build context under .dockerignore's last-match-wins rules."""
    allowed = True
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatchcase(prefix, glob) for prefix in prefixes):
            allowed = negate
    return allowed


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
