"""How the hub is served: uvicorn with the sans-I/O WebSocket stack, limits and keepalive set."""

from __future__ import annotations

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
