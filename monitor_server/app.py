"""The application factory: routes plus a lifespan that owns the hub's services."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route, WebSocketRoute

from monitor_server.http import EXCEPTION_HANDLERS, MIDDLEWARE
from monitor_server.hub import Hub
from monitor_server.openapi import openapi_routes
from monitor_server.routes import commands, devices, ingest, params
from monitor_server.routes.agent_ws import agent_socket
from monitor_server.settings import Settings
from monitor_server.ui.dashboard import Dashboard
from monitor_server.ui.routes import ui_routes

log = logging.getLogger("monitor_server")


def api_routes() -> list[BaseRoute]:
    dev = "/devices/{device_id}"
    cmd = dev + f"/commands/{{command_id:{params.ID64}}}"  # Starlette's int: a 500 past 4,300 digits
    return [
        Route("/health", ingest.health),
        Route("/ingest", ingest.ingest, methods=["POST"]),
        Route("/devices", devices.list_devices),
        Route(dev, devices.device_detail),
        Route(dev + "/metrics", devices.device_metrics),
        Route(dev + "/events", devices.device_events),
        Route(dev + "/commands", commands.enqueue, methods=["POST"]),
        Route(dev + "/commands", commands.list_commands),
        Route(dev + "/commands/next", commands.next_command),
        Route(cmd, commands.command_detail),
        Route(cmd, commands.cancel, methods=["DELETE"]),
        Route(cmd + "/ack", commands.ack, methods=["POST"]),
        WebSocketRoute("/ws/agent", agent_socket),
    ]


def create_app(settings: Settings) -> Starlette:
    hub = Hub.build(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()

    app = Starlette(
        routes=api_routes() + ui_routes() + openapi_routes(),
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=MIDDLEWARE,
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.dashboard = Dashboard.build(hub)
    return app
