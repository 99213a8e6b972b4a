"""Agent releases over REST (DESIGN §12): rollouts (admin), releases and their progress (viewer),
and the bundle itself (any principal, a device's credential included: the agent downloads it)."""

from __future__ import annotations

import logging
import re
import time
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from monitor_server.http import JSONResponse, hub_of, read_model
from monitor_server.identity.audit import AuditAction
from monitor_server.identity.authz import principal_of, requires
from monitor_server.identity.principals import Role
from monitor_server.releases import summary
from monitor_server.store.release_records import Release, Rollout
from monitor_server.throttle import client_address
from protocol.frames import DEVICE_ID_PATTERN, TAG_PATTERN, VERSION_PATTERN

log = logging.getLogger("monitor_server.releases")

DeviceName = Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]
TagName = Annotated[str, StringConstraints(pattern=TAG_PATTERN)]


class RolloutCreate(BaseModel):
    """``POST /releases/{version}/rollout``: exactly one of ``percent``, ``devices``, ``tags``."""

    model_config = ConfigDict(extra="forbid")

    percent: float | None = Field(None, ge=0, le=100, allow_inf_nan=False)
    devices: list[DeviceName] | None = Field(None, min_length=1, max_length=10_000)
    tags: list[TagName] | None = Field(None, min_length=1, max_length=100)
    allow_downgrade: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> RolloutCreate:
        given = [name for name in ("percent", "devices", "tags") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of percent, devices or tags")
        return self

    def target(self) -> dict[str, object]:
        if self.percent is not None:
            return {"percent": self.percent}
        if self.devices is not None:
            return {"devices": sorted(set(self.devices))}
        return {"tags": sorted(set(self.tags or []))}


async def _release(request: Request) -> Release:
    version = request.path_params["version"]
    if not re.fullmatch(VERSION_PATTERN, version):
        raise HTTPException(404, f"no release {version[:80]!r}")
    release = await hub_of(request).store.get_release(version)
    if release is None:
        raise HTTPException(
            404, f"no release {version!r} (publish it with `monitor-server releases publish`)"
        )
    return release


@requires(Role.VIEWER)
async def list_releases(request: Request) -> Response:
    store = hub_of(request).store
    rollouts = {r.version: r for r in await store.list_rollouts()}
    body = []
    for release in await store.list_releases():
        rollout = rollouts.get(release.version)
        body.append({**release.to_json(), "rollout": rollout.to_json() if rollout else None})
    return JSONResponse({"releases": body})


@requires(Role.VIEWER)
async def release_detail(request: Request) -> Response:
    """``GET /releases/{version}``: the release, its rollout, and each device's state with counts."""
    release = await _release(request)
    store = hub_of(request).store
    rollout = await store.get_rollout(release.version)
    states = await store.list_release_devices(release.version)
    return JSONResponse(
        {**release.to_json(), "rollout": rollout.to_json() if rollout else None, **summary(states)}
    )


@requires(Role.ADMIN)
async def create_rollout(request: Request) -> Response:
    """``POST /releases/{version}/rollout``: target the release and offer it to connected agents."""
    release = await _release(request)
    body = await read_model(request, RolloutCreate)
    hub = hub_of(request)
    rollout = Rollout(release.version, body.target(), body.allow_downgrade, False, time.time())
    await hub.store.save_rollout(rollout)
    await hub.identity.audit.record(
        AuditAction.RELEASE_ROLLOUT,
        principal_of(request),
        release.version,
        client_address(request),
        rollout.to_json(),
    )
    offered = await hub.releases.rollout_changed(release.version)
    hub.tell_rollout(release.version)
    log.info("rollout of %s to %s by %s", release.version, rollout.target, principal_of(request).name)
    return JSONResponse({**rollout.to_json(), "offered": offered}, 201)


@requires(Role.VIEWER, device=True)
async def bundle(request: Request) -> Response:
    """``GET /releases/{version}/bundle``: the bundle file, for agents (their credential) and people."""
    release = await _release(request)
    data = await hub_of(request).store.release_bundle(release.version)
    if data is None:
        raise HTTPException(404, f"no release {release.version!r}")
    return Response(
        data,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="monitor-agent-{release.version}.zip"',
            "X-Release-SHA256": release.sha256,
        },
    )
