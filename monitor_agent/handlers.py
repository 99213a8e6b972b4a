"""What each command does: the built-ins and the operator's allow-listed host commands."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from monitor_agent.config import HostCommand, predefined_commands
from monitor_agent.result import CommandResult, failure
from protocol.plain import encode_json

BUILTINS = ("ping", "echo", "collect", "restart")
TRUNCATED_MARK = "\n[output truncated]"


class Handlers:
    """Runs one command by name. ``collect_now`` and ``request_restart`` come from the agent."""

    def __init__(
        self,
        host_commands: Mapping[str, HostCommand],
        *,
        collect_now: Callable[[], Awaitable[None]],
        request_restart: Callable[[], None],
    ) -> None:
        self.host_commands = dict(host_commands)
        self._collect_now = collect_now
        self._request_restart = request_restart

    def capabilities(self) -> list[str]:
        """Command names this agent will run (sent in hello)."""
        return [*BUILTINS, *sorted(self.host_commands)]

    async def run(self, command: str, args: Mapping[str, Any] | None) -> CommandResult:
        args = dict(args or {})
        if command == "ping":
            return CommandResult(True, "pong")
        if command == "echo":
            return CommandResult(True, encode_json(args).decode(), {"args": args})
        if command == "collect":
            await self._collect_now()
            return CommandResult(True, "sample sent")
        if command == "restart":
            self._request_restart()
            return CommandResult(True, f"restarting (pid {os.getpid()})")
        spec = self.host_commands.get(command)
        if spec is None:
            return self._refuse(command)
        return await run_host_command(command, spec, args)

    def _refuse(self, command: str) -> CommandResult:
        if command in predefined_commands():
            return failure(
                f"command {command!r} is not allowed on this agent; enable it with "
                f'--allow {command} (or allow = ["{command}"] in the config file)',
                error="not_allowed",
            )
        return failure(
            f"unknown command {command!r}; this agent runs {self.capabilities()} "
            "(host commands must be defined in the agent's config)",
            error="unknown_command",
        )


def render_argv(template: list[str], args: Mapping[str, Any]) -> list[str]:
    """Fill ``{name}`` placeholders, each into exactly one argv element (no shell involved)."""
    values: dict[str, str] = {}
    for key, value in args.items():
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError(f"argument {key!r} must be a string or a number")
        text = str(value)
        if text.startswith("-"):
            # A value like "--force" would become an option of the program: refuse it.
            raise ValueError(f"argument {key!r} must not start with '-'")
        values[key] = text
    try:
        return [part.format_map(values) for part in template]
    except KeyError as exc:
        raise ValueError(f"missing argument {exc.args[0]!r}") from None
    except (IndexError, ValueError) as exc:
        raise ValueError(f"bad argv template: {exc}") from None


async def run_host_command(name: str, spec: HostCommand, args: Mapping[str, Any]) -> CommandResult:
    """Run ``spec.argv`` with output captured (truncated) and the timeout enforced."""
    try:
        argv = render_argv(spec.argv, args)
    except ValueError as exc:
        return failure(f"{name}: {exc}", error="bad_args")
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=sys.platform != "win32",  # so a timeout can kill its children too
        )
    except OSError as exc:
        return failure(f"{name}: cannot start {argv[0]!r}: {exc}", error="spawn_failed")
    assert proc.stdout is not None
    output = bytearray()
    try:
        async with asyncio.timeout(spec.timeout):
            truncated = await _read_capped(proc.stdout, output, spec.max_output)
            code = await proc.wait()
    except asyncio.CancelledError:
        _kill(proc)  # the agent is stopping: do not leave the child behind
        raise
    except TimeoutError:
        _kill(proc)
        await proc.wait()
        text = output.decode(errors="replace")
        return failure(
            f"{name}: timed out after {spec.timeout:g}s\n{text}".rstrip(),
            error="timeout",
            exit_code=None,
        )
    text = output.decode(errors="replace") + (TRUNCATED_MARK if truncated else "")
    extra = {"exit_code": code, "truncated": truncated, "duration_sec": round(time.monotonic() - started, 3)}
    return CommandResult(code == 0, text, extra)


async def _read_capped(stream: asyncio.StreamReader, into: bytearray, limit: int) -> bool:
    """Keep the first ``limit`` bytes; read (and discard) the rest so the child never blocks."""
    truncated = False
    while chunk := await stream.read(65536):
        room = limit - len(into)
        if len(chunk) > room:
            truncated = True
        into.extend(chunk[: max(room, 0)])
    return truncated


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        if sys.platform == "win32":
            proc.kill()
        else:
            os.killpg(proc.pid, signal.SIGKILL)
