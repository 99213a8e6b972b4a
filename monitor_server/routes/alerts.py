"""Alerts over REST (DESIGN §11): rules and notifiers (admin), silences (operator), alerts now (viewer).

A notifier's URL and headers may hold secrets: answers show the URL's scheme and host and the
header names only, and nothing here logs them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from monitor_server.alerts import AlertService
from monitor_server.alerts.bodies import NotifierCreate, RuleCreate, RuleUpdate, SilenceCreate
from monitor_server.http import JSONResponse, hub_of, read_model
from monitor_server.identity.authz import principal_of, requires
from monitor_server.identity.principals import Role
from monitor_server.routes.params import INT64_MAX
from monitor_server.store.alert_records import AlertRule, Notifier, Silence
from protocol import describe
from protocol.timestamps import LATEST, to_epoch

log = logging.getLogger("monitor_server.alerts")


def _alerts(request: Request) -> AlertService:
    service = hub_of(request).alerts
    if service is None:
        raise HTTPException(404, "alerts are not enabled on this hub")
    return service


def _id(request: Request, name: str) -> int:
    value: int = request.path_params[name]
    if not 1 <= value <= INT64_MAX:
        raise HTTPException(404, f"no such {name.removesuffix('_id')} (ids are 1 to {INT64_MAX})")
    return value


async def _routed(request: Request, body: RuleCreate) -> list[int]:
    """The ids of the notifiers the rule names (by id or name), in its order; 422 for unknown ones."""
    if not body.notifiers:
        return []
    notifiers = await hub_of(request).store.list_notifiers()
    by_id = {n.id: n.id for n in notifiers}
    by_name = {n.name: n.id for n in notifiers}
    ids: list[int] = []
    unknown: list[str] = []
    for ref in body.notifiers:
        found = by_id.get(ref) if isinstance(ref, int) else by_name.get(ref)
        if found is None:
            unknown.append(str(ref))
        elif found not in ids:
            ids.append(found)
    if unknown:
        raise HTTPException(422, f"invalid rule: unknown notifier(s): {', '.join(unknown)}")
    return ids


def _rule(body: RuleCreate, rule_id: int, created_at: float, now: float, notifiers: list[int]) -> AlertRule:
    return AlertRule(
        rule_id,
        body.name,
        body.kind,
        body.metric,
        body.op,
        body.value,
        body.clear_value,
        body.for_seconds,
        body.severity,
        body.selector.model_dump(),
        created_at,
        now,
        notifiers,
    )


# rules


@requires(Role.ADMIN)
async def create_rule(request: Request) -> Response:
    body = await read_model(request, RuleCreate)
    service, now = _alerts(request), time.time()
    notifiers = await _routed(request, body)
    rule = await hub_of(request).store.create_alert_rule(_rule(body, 0, now, now, notifiers))
    await service.rules_changed()
    log.info("alert rule %d %r created by %s", rule.id, rule.name, principal_of(request).name)
    return JSONResponse(rule.to_json(), 201)


@requires(Role.VIEWER)
async def list_rules(request: Request) -> Response:
    rules = await hub_of(request).store.list_alert_rules()
    return JSONResponse({"rules": [r.to_json() for r in rules]})


@requires(Role.VIEWER)
async def get_rule(request: Request) -> Response:
    rule = await hub_of(request).store.get_alert_rule(_id(request, "rule_id"))
    if rule is None:
        raise HTTPException(404, "no such alert rule")
    return JSONResponse(rule.to_json())


@requires(Role.ADMIN)
async def update_rule(request: Request) -> Response:
    patch = await read_model(request, RuleUpdate)
    hub, service = hub_of(request), _alerts(request)
    rule = await hub.store.get_alert_rule(_id(request, "rule_id"))
    if rule is None:
        raise HTTPException(404, "no such alert rule")
    current = {k: v for k, v in rule.to_json().items() if k not in ("id", "created_at", "updated_at")}
    merged: dict[str, Any] = {**current, **patch.model_dump(exclude_unset=True, by_alias=True)}
    if merged.get("selector") is None:
        merged["selector"] = {}
    if merged.get("notifiers") is None:
        merged["notifiers"] = []  # null: every notifier again
    try:
        body = RuleCreate.model_validate(merged)
    except ValidationError as exc:
        raise HTTPException(422, f"invalid rule: {describe(exc)}") from None
    notifiers = await _routed(request, body)
    updated = await hub.store.update_alert_rule(_rule(body, rule.id, rule.created_at, time.time(), notifiers))
    if updated is None:
        raise HTTPException(404, "no such alert rule")
    await service.rules_changed()
    return JSONResponse(updated.to_json())


@requires(Role.ADMIN)
async def delete_rule(request: Request) -> Response:
    rule_id = _id(request, "rule_id")
    if not await hub_of(request).store.delete_alert_rule(rule_id):
        raise HTTPException(404, "no such alert rule")
    await _alerts(request).rules_changed()
    return JSONResponse({"ok": True, "id": rule_id})


# notifiers


@requires(Role.ADMIN)
async def create_notifier(request: Request) -> Response:
    body = await read_model(request, NotifierCreate)
    notifier = Notifier(0, body.name, body.kind, body.url, dict(body.headers), time.time())
    notifier = await hub_of(request).store.create_notifier(notifier)
    await _alerts(request).notifiers_changed()
    return JSONResponse(notifier.to_json(), 201)


@requires(Role.ADMIN)
async def list_notifiers(request: Request) -> Response:
    notifiers = await hub_of(request).store.list_notifiers()
    return JSONResponse({"notifiers": [n.to_json() for n in notifiers]})


@requires(Role.ADMIN)
async def delete_notifier(request: Request) -> Response:
    """409 while a rule routes to it (deleting it would leave the rule's alerts going nowhere)."""
    notifier_id = _id(request, "notifier_id")
    store = hub_of(request).store
    routed = [r.name for r in await store.list_alert_rules() if notifier_id in r.notifiers]
    if routed:
        raise HTTPException(
            409, f"rules route to this notifier: {', '.join(routed)} (change their notifiers first)"
        )
    if not await store.delete_notifier(notifier_id):
        raise HTTPException(404, "no such notifier")
    await _alerts(request).notifiers_changed()
    return JSONResponse({"ok": True, "id": notifier_id})


# silences


@requires(Role.OPERATOR)
async def create_silence(request: Request) -> Response:
    body = await read_model(request, SilenceCreate)
    now = time.time()
    try:
        ends_at = to_epoch(body.ends_at)
    except (ValueError, OverflowError):
        raise HTTPException(422, "invalid ends_at: expected ISO-8601 or epoch seconds") from None
    if not now < ends_at <= LATEST:
        raise HTTPException(422, "invalid ends_at: it must be in the future (and before 2100)")
    matchers = body.matchers.model_dump(exclude_none=True)
    silence = Silence(0, matchers, ends_at, body.comment, principal_of(request).name, now)
    silence = await hub_of(request).store.create_silence(silence)
    await _alerts(request).silences_changed()
    return JSONResponse(silence.to_json(), 201)


@requires(Role.VIEWER)
async def list_silences(request: Request) -> Response:
    silences = await hub_of(request).store.list_silences(active_at=time.time())
    return JSONResponse({"silences": [s.to_json() for s in silences]})


@requires(Role.OPERATOR)
async def delete_silence(request: Request) -> Response:
    silence_id = _id(request, "silence_id")
    if not await hub_of(request).store.delete_silence(silence_id):
        raise HTTPException(404, "no such silence")
    await _alerts(request).silences_changed()
    return JSONResponse({"ok": True, "id": silence_id})


# alerts now


@requires(Role.VIEWER)
async def list_alerts(request: Request) -> Response:
    return JSONResponse({"alerts": await _alerts(request).alerts()})
