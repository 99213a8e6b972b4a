"""Command handlers and the executor: built-ins, allow-list, host commands, exactly-once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from monitor_agent.config import HostCommand
from monitor_agent.executor import CommandExecutor
from monitor_agent.handlers import Handlers, render_argv
from monitor_agent.journal import FileJournal, MemoryJournal

PY = sys.executable


class Calls:
    def __init__(self) -> None:
        self.collects = 0
        self.restarts = 0

    async def collect(self) -> None:
        self.collects += 1

    def restart(self) -> None:
        self.restarts += 1


def handlers(calls: Calls, **commands: HostCommand) -> Handlers:
    return Handlers(commands, collect_now=calls.collect, request_restart=calls.restart)


async def test_ping_answers_pong() -> None:
    """ping succeeds with "pong"."""
    result = await handlers(Calls()).run("ping", None)
    assert (result.success, result.message) == (True, "pong")


async def test_echo_returns_its_args() -> None:
    """echo returns its args (as JSON in the message and as a field)."""
    result = await handlers(Calls()).run("echo", {"a": 1})
    assert result.success and result.extra["args"] == {"a": 1} and '"a":1' in result.message


async def test_collect_and_restart_call_back_into_the_agent() -> None:
    """collect takes a sample now; restart asks the agent to restart."""
    calls = Calls()
    assert (await handlers(calls).run("collect", None)).success
    assert (await handlers(calls).run("restart", None)).success
    assert (calls.collects, calls.restarts) == (1, 1)


async def test_unknown_command_is_refused_clearly() -> None:
    """An unknown name fails with a message naming it and what the agent runs."""
    result = await handlers(Calls()).run("format-disk", None)
    assert not result.success
    assert "unknown command 'format-disk'" in result.message and "ping" in result.message


async def test_predefined_but_not_allowed_is_refused() -> None:
    """reboot exists but is off unless allowed; the message says how to enable it."""
    result = await handlers(Calls()).run("reboot", None)
    assert not result.success and "--allow reboot" in result.message


async def test_host_command_output_and_exit_code() -> None:
    """An allowed command runs with its args filled in; output and exit code come back."""
    spec = HostCommand(argv=[PY, "-c", "import sys; print(sys.argv[1]); sys.exit(3)", "{word}"])
    result = await handlers(Calls(), say=spec).run("say", {"word": "hello"})
    assert not result.success
    assert result.message.strip() == "hello" and result.extra["exit_code"] == 3


async def test_host_command_output_is_truncated() -> None:
    """Output beyond max_output is cut and marked, and the command still completes."""
    spec = HostCommand(argv=[PY, "-c", "print('x' * 100000)"], max_output=100)
    result = await handlers(Calls(), big=spec).run("big", None)
    assert result.success and result.extra["truncated"]
    assert result.message.startswith("x" * 100) and "[output truncated]" in result.message


async def test_host_command_timeout_is_enforced() -> None:
    """A command running past its timeout is killed and reported as timed out."""
    spec = HostCommand(argv=[PY, "-c", "import time; time.sleep(30)"], timeout=0.3)
    result = await handlers(Calls(), slow=spec).run("slow", None)
    assert not result.success and "timed out" in result.message


async def test_missing_program_is_a_failure_not_a_crash() -> None:
    """A template naming a program that does not exist acks failure."""
    spec = HostCommand(argv=["/nonexistent/program"])
    result = await handlers(Calls(), nope=spec).run("nope", None)
    assert not result.success and "cannot start" in result.message


def test_render_argv_fills_one_element_per_placeholder() -> None:
    """Values are never split or shell-interpreted."""
    assert render_argv(["systemctl", "restart", "{svc}"], {"svc": "a b;c"}) == [
        "systemctl",
        "restart",
        "a b;c",
    ]


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({}, "missing argument 'svc'"),
        ({"svc": "--force"}, "must not start with '-'"),
        ({"svc": ["x"]}, "string or a number"),
    ],
)
def test_render_argv_refuses_bad_args(args: dict[str, object], problem: str) -> None:
    """Missing args, option-looking values and non-scalars are refused."""
    with pytest.raises(ValueError, match=problem):
        render_argv(["systemctl", "restart", "{svc}"], args)


async def test_executor_runs_a_command_once(tmp_path: Path) -> None:
    """A redelivered id is answered from the journal; the command does not run again."""
    marker = tmp_path / "runs"
    spec = HostCommand(argv=[PY, "-c", f"open({str(marker)!r}, 'a').write('x')"])
    journal = FileJournal(tmp_path / "journal.jsonl")
    executor = CommandExecutor(journal, handlers(Calls(), mark=spec))
    first = await executor.execute(11, "mark", None)
    second = await executor.execute(11, "mark", None)
    journal.close()
    assert first == second and first is not None and first.success
    assert marker.read_text() == "x"


async def test_executor_never_reruns_an_interrupted_command(tmp_path: Path) -> None:
    """A command begun by a process that died is answered as interrupted, not run."""
    path = tmp_path / "journal.jsonl"
    crashed = FileJournal(path)
    crashed.begin(4, "restart")
    crashed.close()
    calls = Calls()
    journal = FileJournal(path)
    result = await CommandExecutor(journal, handlers(calls)).execute(4, "restart", None)
    journal.close()
    assert result is not None and not result.success and "not run again" in result.message
    assert calls.restarts == 0


async def test_handler_exception_becomes_a_failed_result() -> None:
    """A handler that raises gives success false with the error, and the executor carries on."""

    async def broken() -> None:
        raise RuntimeError("sensor on fire")

    executor = CommandExecutor(
        MemoryJournal(), Handlers({}, collect_now=broken, request_restart=lambda: None)
    )
    result = await executor.execute(1, "collect", None)
    assert result is not None and not result.success and "sensor on fire" in result.message
    assert (await executor.execute(2, "ping", None)) is not None
