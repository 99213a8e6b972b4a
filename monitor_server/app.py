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
from monitor_server.prometheus import HubMetrics, metrics
from monitor_server.routes import (
    accounts,
    alerts,
    audit,
    commands,
    devices,
    enrollment,
    fleet,
    ingest,
    params,
    releases,
    rotation,
)
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
        Route("/metrics", metrics),  # Prometheus text format (DESIGN §14)
        Route("/ingest", ingest.ingest, methods=["POST"]),
        Route("/devices", devices.list_devices),
        Route(dev, devices.device_detail),
        Route(dev, devices.remove_device, methods=["DELETE"]),
        Route(dev, fleet.update_device, methods=["PATCH"]),
        Route(dev + "/metrics", devices.device_metrics),
        Route(dev + "/events", devices.device_events),
        Route(dev + "/commands", commands.enqueue, methods=["POST"]),
        Route(dev + "/commands", commands.list_commands),
        Route(dev + "/commands/next", commands.next_command),
        Route(cmd, commands.command_detail),
        Route(cmd, commands.cancel, methods=["DELETE"]),
        Route(cmd + "/ack", commands.ack, methods=["POST"]),
        Route("/commands/bulk", fleet.enqueue_bulk, methods=["POST"]),
        Route("/commands/bulk/{bulk_id}", fleet.bulk_status),
        WebSocketRoute("/ws/agent", agent_socket),
        *identity_routes(),
        *alert_routes(),
        *release_routes(),
    ]


def release_routes() -> list[BaseRoute]:
    """DESIGN §12: releases and their progress (viewer), rollouts (admin), bundles (agents too)."""
    release = "/releases/{version}"
    return [
        Route("/releases", releases.list_releases),
        Route(release, releases.release_detail),
        Route(release + "/rollout", releases.create_rollout, methods=["POST"]),
        Route(release + "/bundle", releases.bundle),
    ]


def alert_routes() -> list[BaseRoute]:
    """DESIGN §11: rules and notifiers (admin), silences (operator), the alerts now (viewer)."""
    rule, notifier = f"/alert-rules/{{rule_id:{params.ID64}}}", f"/notifiers/{{notifier_id:{params.ID64}}}"
    return [
        Route("/alert-rules", alerts.create_rule, methods=["POST"]),
        Route("/alert-rules", alerts.list_rules),
        Route(rule, alerts.get_rule),
        Route(rule, alerts.update_rule, methods=["PATCH"]),
        Route(rule, alerts.delete_rule, methods=["DELETE"]),
        Route("/notifiers", alerts.create_notifier, methods=["POST"]),
        Route("/notifiers", alerts.list_notifiers),
        Route(notifier, alerts.delete_notifier, methods=["DELETE"]),
        Route("/silences", alerts.create_silence, methods=["POST"]),
        Route("/silences", alerts.list_silences),
        Route(f"/silences/{{silence_id:{params.ID64}}}", alerts.delete_silence, methods=["DELETE"]),
        Route("/alerts", alerts.list_alerts),
    ]


def identity_routes() -> list[BaseRoute]:
    """DESIGN §10: enrollment, device credentials, users, sessions, API keys, audit."""
    dev = "/devices/{device_id}"
    return [
        Route("/enrollment-tokens", enrollment.create_token, methods=["POST"]),
        Route("/enrollment-tokens", enrollment.list_tokens),
        Route("/enrollment-tokens/{token_id}", enrollment.delete_token, methods=["DELETE"]),
        Route("/enroll", enrollment.enroll, methods=["POST"]),
        Route(dev + "/credential", enrollment.credential_state),
        Route(dev + "/revoke", enrollment.revoke, methods=["POST"]),
        Route(dev + "/reset", enrollment.reset, methods=["POST"]),
        Route(dev + "/rotate", rotation.rotate, methods=["POST"]),
        Route("/users", accounts.create_user, methods=["POST"]),
        Route("/users", accounts.list_users),
        Route("/users/{name}", accounts.update_user, methods=["PATCH"]),
        Route("/users/{name}", accounts.delete_user, methods=["DELETE"]),
        Route("/login", accounts.login, methods=["POST"]),
        Route("/logout", accounts.logout, methods=["POST"]),
        Route("/me", accounts.me),
        Route("/api-keys", accounts.create_api_key, methods=["POST"]),
        Route("/api-keys", accounts.list_api_keys),
        Route("/api-keys/{key_id}", accounts.delete_api_key, methods=["DELETE"]),
        Route("/audit", audit.audit_log),
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
    app.state.prometheus = HubMetrics(hub)
    app.state.dashboard = Dashboard.build(hub)
    return app
