"""How the hub is served: uvicorn with the sans-I/O WebSocket stack, limits and keepalive set."""

from __future__ import annotations

import contextlib
import gc
import signal
import sys
from typing import NoReturn

import uvicorn
from starlette.applications import Starlette

from monitor_server.keepalive import KeepaliveReportingProtocol
from monitor_server.settings import Settings


def uvicorn_config(app: Starlette, settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ws=KeepaliveReportingProtocol,
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=settings.ping_interval,
        ws_ping_timeout=settings.ping_timeout,
        ws_per_message_deflate=False,  # metrics frames are small; deflate costs CPU and memory per socket
        log_config=None,  # logging is configured by monitor_server.logs
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
    )


# Every connection keeps hundreds of long-lived objects; with the default thresholds a full
# collection walks all of them every few seconds and stalls the loop for 100+ ms at 5,000 agents
# (bench push scenario: p99 push latency 0.9 s -> 25 ms with this; see docs/benchmarks.md).
GC_THRESHOLDS = (100_000, 50, 100)


def tune_gc() -> None:
    """Collect less often, and never re-scan what exists at start (imports, the app)."""
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()


def _exit_cleanly(signum: int, frame: object) -> NoReturn:
    sys.exit(0)


def serve(app: Starlette, settings: Settings) -> None:
    """Run until SIGINT or SIGTERM, then return normally (exit status 0, ``finally`` blocks run).

    uvicorn shuts down gracefully on those signals and then re-raises the signal against the
    handlers that were in place before it started; these turn that into a clean exit rather
    than a KeyboardInterrupt traceback or death by SIGTERM.
    """
    signal.signal(signal.SIGTERM, _exit_cleanly)
    tune_gc()
    try:
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.Server(uvicorn_config(app, settings)).run()
    except SystemExit as exc:
        if exc.code not in (0, None):  # uvicorn exits 1 when it cannot start: keep that
            raise
