"""The daemon: build one agent from its config, run it, handle signals and restarts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time

from monitor_agent import __version__
from monitor_agent.agent import Agent, ExitReason, Transport
from monitor_agent.collector import Collector
from monitor_agent.config import DEV_TOKEN, AgentConfig, public_url
from monitor_agent.connection import WsSettings, WsTransport
from monitor_agent.credential import Credentials
from monitor_agent.errors import EnrollmentFailed
from monitor_agent.identity import local_identity, stable_device_id
from monitor_agent.journal import FileJournal
from monitor_agent.spool import SqliteSpool
from protocol.plain import encode_json

log = logging.getLogger("monitor_agent")


def build_transport(config: AgentConfig, credentials: Credentials | None = None) -> Transport:
    """The WebSocket transport, or the seed's REST polling with ``transport = "http"``.

    ``credentials``: the device credential kept in the state folder; None presents the legacy token.
    """
    if config.transport == "http":
        from monitor_agent.http_transport import HttpSettings, HttpTransport  # only when chosen

        first, *others = config.http_urls()
        return HttpTransport(
            HttpSettings(
                base_url=first,
                failover_urls=tuple(others),
                token=config.token,
                poll_interval=config.effective_poll_interval(),
                backoff_base=config.backoff_base,
                backoff_cap=config.backoff_cap,
                auth_retry_delay=config.auth_retry_delay,
                timeout=config.connect_timeout,
                credentials=credentials,
            )
        )
    first, *others = config.ws_urls()
    return WsTransport(
        WsSettings(
            url=first,
            failover_urls=tuple(others),
            token=config.token,
            batch_size=config.batch_size,
            backoff_base=config.backoff_base,
            backoff_cap=config.backoff_cap,
            auth_retry_delay=config.auth_retry_delay,
            connect_timeout=config.connect_timeout,
            ssl_context=config.ssl_context(),
            ca_file=config.ca_file,
            credentials=credentials,
        )
    )


def build_agent(config: AgentConfig) -> Agent:
    """An agent whose spool, journal and device id live in ``config.state_dir``."""
    state = config.state_dir
    state.mkdir(parents=True, exist_ok=True)
    device_id = config.device_id or stable_device_id(state)
    collector = Collector()
    return Agent(
        identity=local_identity(device_id, state, config.tags),
        sample_source=collector.sample,
        spool=SqliteSpool(state / "spool.sqlite3", config.spool_max_samples),
        journal=FileJournal(state / "journal.jsonl"),
        interval=config.interval,
        host_commands=config.host_commands(),
        # A sample is a handful of /proc reads (about 0.6 ms): a worker thread would cost
        # more memory than the loop ever waits.
        sample_in_thread=False,
    )


async def serve(config: AgentConfig) -> ExitReason:
    """Run until SIGTERM/SIGINT (exit) or the restart command (re-exec)."""
    from monitor_agent.enroll import credentials_for  # enrolls when a token is given and none is kept

    agent = build_agent(config)
    try:
        credentials = await credentials_for(config)
    except EnrollmentFailed:
        agent.close()
        raise
    transport = build_transport(config, credentials)
    _install_signal_handlers(agent)
    if credentials.device_credential and credentials.store is not None:
        log.info("presenting the device credential kept in %s", credentials.store.path)
    elif config.token == DEV_TOKEN:
        log.warning("using the development token; set --token or MONITOR_AGENT_TOKEN")
    hubs = config.ws_urls() if config.transport == "ws" else config.http_urls()
    log.info(
        "monitor-agent %s started: pid %d, device %s, %s transport to %s, state in %s",
        __version__,
        os.getpid(),
        agent.identity.device_id,
        config.transport,
        ", ".join(map(public_url, hubs)),
        config.state_dir,
    )
    try:
        reason = await agent.run(transport)
    finally:
        agent.close()
    log.info("monitor-agent stopped (%s)", reason)
    return reason


def _install_signal_handlers(agent: Agent) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, agent.stop)
        except (NotImplementedError, RuntimeError):  # Windows: no loop signal handlers
            signal.signal(signum, lambda *_: loop.call_soon_threadsafe(agent.stop))


def restart_process(mode: str) -> None:
    """Replace this process with a fresh one running the same command line.

    ``exec`` keeps the pid, so systemd and other supervisors see no exit; ``spawn``
    starts a new process (new pid) and lets this one exit.
    """
    argv = [sys.executable, *sys.orig_argv[1:]]
    log.info("restarting: %s (%s)", " ".join(argv), mode)
    logging.shutdown()
    if mode == "spawn":
        subprocess.Popen(argv, start_new_session=True)  # noqa: S603 - our own command line
        return
    os.execv(sys.executable, argv)  # noqa: S606 - same interpreter, same arguments


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return encode_json(entry).decode()


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # websockets logs every failed handshake at INFO with a traceback; ours says it once.
    logging.getLogger("websockets").setLevel(max(logging.WARNING, root.level))


def run(config: AgentConfig) -> int:
    """Blocking entry point of ``monitor-agent run``; returns the exit status."""
    configure_logging(config.log_level, config.log_format)
    try:
        reason = asyncio.run(serve(config))
    except EnrollmentFailed as exc:
        log.error("%s", exc)
        return 1
    if reason is ExitReason.RESTART:
        with contextlib.suppress(KeyboardInterrupt):
            restart_process(config.restart_mode)
    return 0
