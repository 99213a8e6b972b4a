"""The REST API described as OpenAPI 3.1 (``GET /openapi.json``) and rendered at ``GET /docs``.

Request bodies are generated from the definitions the routes parse them with: the msgspec
``IngestPayload`` and the pydantic ``CommandCreate``/``CommandAckBody``. Responses are written
out here from the records' ``to_json``; ``tests/integration/test_openapi_fuzz.py`` checks the
document covers every REST route and runs schemathesis against a live hub to hold it to that.
Both routes are public: the document holds no secret, only the shape of the API.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from monitor_server import __version__
from monitor_server.alerts.bodies import NotifierCreate, RuleCreate, RuleUpdate, SilenceCreate
from monitor_server.http import JSONResponse
from monitor_server.routes.fleet import OUTCOMES as _OUTCOMES
from monitor_server.routes.releases import RolloutCreate
from monitor_server.ui.pages import SECURITY_HEADERS
from monitor_server.ui.session import COOKIE_NAME
from protocol import CommandAckBody, CommandCreate, CommandState
from protocol.frames import DEVICE_ID_PATTERN
from protocol.identity import (
    ApiKeyCreate,
    EnrollmentTokenCreate,
    EnrollRequest,
    LoginRequest,
    Role,
    UserCreate,
    UserUpdate,
)
from protocol.rest import MAX_BULK, BulkCommandCreate, DeviceUpdate, IngestPayload
from protocol.timestamps import LATEST

Schema = dict[str, Any]

INT64_MAX = 2**63 - 1
REF = "#/components/schemas/{name}"
_DESCRIPTION = """\
REST API of the monitoring hub: the original agent's `/ingest` and command polling, device
and command queries for scripts and the dashboard. Agents that keep a connection use the
WebSocket `/ws/agent` instead (docs/protocol.md); it is not described here.

**Authentication.** Every endpoint except `/health`, `/enroll`, `/login`, `/logout`,
`/openapi.json` and `/docs` needs a credential: an API key, a device credential or the legacy
fleet token as `X-Auth-Token: <secret>` or `Authorization: Bearer <secret>`, or the session
cookie `POST /login` sets (writes then also need the `X-Monitor-UI: 1` header and a same-site
`Origin`). Without one the answer is 401; 403 when the role does not allow the operation
(viewer: reads; operator: also commands; admin: also identity and audit) or a device
credential is used for another device or a non-device route (docs/security.md).

**Times** are ISO-8601 UTC strings (`2025-01-31T12:00:00.5Z`); time parameters accept
ISO-8601 or epoch seconds.

**Errors** are JSON `{"detail": "<what is wrong>"}`: 401 without a valid token (429 after
too many wrong ones from one address), 403 when the credential may not do it, 404 for an
unknown device, command or path, 405 for a method a path does not have, 409 for a command
that cannot change state (or a taken name, an enrolled device), 413 for a body over the
hub's frame limit (`MONITOR_MAX_FRAME_BYTES`, 1 MiB by default), 422 for a
malformed body or parameter, 503 while the database fails (retry after `Retry-After`
seconds). A bug answers 500 `{"detail": "internal error"}` and is logged by the hub.
"""


def _ref(name: str) -> Schema:
    return {"$ref": REF.format(name=name)}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


_TIME: Schema = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = _nullable(_TIME)
_STR_OR_NULL = _nullable({"type": "string"})
_OBJECT_OR_NULL = _nullable({"type": "object"})


def _object(properties: dict[str, Schema], required: list[str] | None = None, **extra: Any) -> Schema:
    """A response object: these fields at least (more may be added later, so others are allowed)."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        **extra,
    }


def _request_schemas() -> dict[str, Schema]:
    """Request bodies, from the definitions the routes validate them with."""
    _, ingest_defs = msgspec.json.schema_components([IngestPayload], ref_template=REF)
    schemas: dict[str, Schema] = dict(ingest_defs)
    ingest = schemas["IngestPayload"]
    # The route keeps fields it does not name (msgspec's strict decode is only its fast path).
    ingest["additionalProperties"] = _ref("JsonValue")
    ingest["description"] = (
        "The original agent's flat sample. Only `device_id` is required; fields not named"
        " here are accepted and stored with the sample (any JSON value nested at most 32"
        " deep, integers within signed 64 bits)."
    )
    # ``ts`` is checked after decoding (protocol.timestamps.check_timestamp): 1970 to 2100.
    ingest["properties"]["ts"] = {
        "anyOf": [
            {"type": "number", "minimum": 0, "maximum": LATEST},
            {"type": "string", "format": "date-time"},
            {"type": "null"},
        ],
        "default": None,
        "description": "When the sample was taken (ISO-8601 or epoch seconds, 1970 to 2100);"
        " the time of receipt when absent.",
    }
    for model in (
        CommandCreate,
        BulkCommandCreate,
        DeviceUpdate,
        CommandAckBody,
        EnrollmentTokenCreate,
        EnrollRequest,
        UserCreate,
        UserUpdate,
        LoginRequest,
        ApiKeyCreate,
        RuleCreate,
        RuleUpdate,
        NotifierCreate,
        SilenceCreate,
        RolloutCreate,
    ):
        generated = model.model_json_schema(ref_template=REF.replace("{name}", "{model}"))
        schemas.update(generated.pop("$defs", {}))
        schemas[model.__name__] = generated
    schemas["CommandAckBody"]["description"] = (
        "A command's result. Other fields (output, exit code...) are kept as the command's `result`."
    )
    # Free-form JSON is stored and sent back as it came: integers must fit 64 bits.
    schemas["CommandAckBody"]["additionalProperties"] = _ref("JsonValue")
    schemas["CommandCreate"]["properties"]["args"]["anyOf"][0] = {
        "type": "object",
        "additionalProperties": _ref("JsonValue"),
    }
    schemas["JsonValue"] = {
        "description": "Any JSON value with integers within signed 64 bits. Nesting is bounded"
        " (32 levels in a sample's fields, 255 elsewhere), which this schema does not express.",
        "anyOf": [
            {"type": ["null", "boolean", "string"]},
            {"type": "integer", "minimum": -(2**63), "maximum": INT64_MAX},
            {"type": "number", "not": {"type": "integer"}},
            {"type": "array", "items": _ref("JsonValue")},
            {"type": "object", "additionalProperties": _ref("JsonValue")},
        ],
    }
    return schemas


def _response_schemas() -> dict[str, Schema]:
    command: dict[str, Schema] = {
        "id": {"type": "integer"},
        "device_id": {"type": "string"},
        "command": {"type": "string"},
        "args": _OBJECT_OR_NULL,
        "status": {"type": "string", "enum": [s.value for s in CommandState]},
        "created_at": _TIME,
        "delivered_at": _TIME_OR_NULL,
        "acked_at": _TIME_OR_NULL,
        "cancelled_at": _TIME_OR_NULL,
        "success": _nullable({"type": "boolean"}),
        "message": _STR_OR_NULL,
        "result": _OBJECT_OR_NULL,
    }
    device: dict[str, Schema] = {
        "device_id": {"type": "string"},
        "hostname": _STR_OR_NULL,
        "last_seen": _TIME_OR_NULL,
        "online": {"type": "boolean"},
        "last_payload": _OBJECT_OR_NULL,
        "status": _STR_OR_NULL,
        "agent_version": _STR_OR_NULL,
        "last_error": _STR_OR_NULL,
        "platform": _STR_OR_NULL,
        "connection": _STR_OR_NULL,
        "presence_reason": _STR_OR_NULL,
        "presence_since": _TIME_OR_NULL,
        "offline_reason": _STR_OR_NULL,
        "first_seen": _TIME,
        "name": {**_STR_OR_NULL, "description": "The display name an operator gave it."},
        "tags": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Every tag: those operators set and those the agent reports.",
        },
        "agent_tags": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The tags the agent reports in hello (from its config).",
        },
    }
    number_or_null = _nullable({"type": "number"})
    return {
        "Error": _object(
            {"detail": {"type": "string"}},
            description="Every error answer: what is wrong, for a human.",
            examples=[{"detail": "missing or invalid token (X-Auth-Token)"}],
        ),
        "Health": _object(
            {
                "ok": {"type": "boolean"},
                "version": {"type": "string"},
                "agents_connected": {"type": "integer", "minimum": 0},
                "devices_online": {"type": "integer", "minimum": 0},
                "store": {"type": "string", "description": '`"ok"`, or `"failing: <reason>"`.'},
            },
            required=["ok", "version", "agents_connected", "devices_online"],
        ),
        "IngestAccepted": _object(
            {"ok": {"const": True}, "ts_utc": _TIME},
            description="The sample is committed; `ts_utc` is when the hub received it.",
        ),
        "Device": _object(
            device,
            required=["device_id", "hostname", "last_seen", "online", "last_payload"],
            description="A device the hub has heard of (or has a command for).",
        ),
        "DeviceDetail": {
            "allOf": [
                _ref("Device"),
                _object(
                    {"latest_sample": _nullable(_ref("Sample")), "connected": {"type": "boolean"}},
                ),
            ]
        },
        "Sample": _object(
            {
                "ts": _TIME,
                "cpu": number_or_null,
                "ram": number_or_null,
                "disk": number_or_null,
                "uptime_sec": _nullable({"type": "integer"}),
                "status": _STR_OR_NULL,
            },
            description="A stored sample: the core metrics, then every other field it was sent with."
            " A bucket (`step`) carries the averages of the numeric metrics the tiers keep (docs/api.md:"
            " the core ones, load, memory, swap and disk bytes, disk and network rates, processes,"
            " temperature, agent RSS), `count` (its samples) and `min` / `max` (objects by field).",
        ),
        "Metrics": _object(
            {
                "device_id": {"type": "string"},
                "step": {
                    **number_or_null,
                    "description": "The bucket width answered: from 60 s up, whole rows of the tier read.",
                },
                "tier": {"enum": ["raw", "minute", "hour", "6h"], "description": "Where buckets came from."},
                "samples": {"type": "array", "items": _ref("Sample")},
                "truncated": {"type": "boolean"},
                "next_until": number_or_null,
            },
            description="`samples` are the newest `limit` of the range, oldest first. `truncated` is"
            " true when the range holds older samples than these; `next_until` (epoch seconds) is then"
            " the `until` that asks for the page before this one (same `since`, `limit`, `step`), and"
            " null otherwise.",
        ),
        "PresenceEvent": _object(
            {
                "device_id": {"type": "string"},
                "online": {"type": "boolean"},
                "reason": {"type": "string"},
                "connection": _STR_OR_NULL,
                "at": _TIME,
            }
        ),
        "PresenceEvents": _object(
            {"device_id": {"type": "string"}, "events": {"type": "array", "items": _ref("PresenceEvent")}}
        ),
        "Command": _object(command),
        "DeviceUpdated": {"allOf": [_object({"ok": {"const": True}}), _ref("Device")]},
        "BulkCommand": _object(
            {
                "ok": {"const": True},
                "id": {"type": "string"},
                "command": _STR_OR_NULL,
                "total": {"type": "integer", "minimum": 0},
                "counts": _object({k: {"type": "integer", "minimum": 0} for k in _OUTCOMES}),
                "commands": {"type": "array", "items": _ref("Command")},
                "truncated": {"type": "boolean"},
            },
            required=["id", "total", "counts", "commands"],
            description="One command per device; `counts` by outcome (`acked` succeeded,"
            " `failed` was acknowledged with `success: false`).",
        ),
        "CommandCreated": _object(
            {"ok": {"const": True}, **command, "duplicate": {"type": "boolean"}},
            description="The command as stored; `duplicate` is true when an earlier request with the"
            " same `Idempotency-Key` created it.",
        ),
        "CommandCancelled": _object({"ok": {"const": True}, **command}),
        "CommandList": _object(
            {"device_id": {"type": "string"}, "commands": {"type": "array", "items": _ref("Command")}}
        ),
        "NextCommand": _object(
            {
                "id": {"type": "integer"},
                "command": {"type": "string"},
                "args": _OBJECT_OR_NULL,
                "created_at": _TIME,
            }
        ),
        "AckResult": _object(
            {
                "ok": {"const": True},
                "ack_at": _TIME_OR_NULL,
                "status": {"type": "string", "enum": [s.value for s in CommandState]},
            },
            description="`status` is the command's state after the request: `acked`, or the final"
            " state it already had (a repeated ack, or one after cancel, changes nothing).",
        ),
        "SessionState": _object(
            {"logged_in": {"type": "boolean"}, "principal": _nullable(_ref("Principal"))},
            required=["logged_in"],
        ),
        **_identity_schemas(),
        **_alert_schemas(),
        **_release_schemas(),
    }


def _identity_schemas() -> dict[str, Schema]:
    """Answers of the identity endpoints (DESIGN §10). Secrets appear only where they are issued."""
    role: Schema = {"type": "string", "enum": [r.value for r in Role]}
    user: dict[str, Schema] = {
        "name": {"type": "string"},
        "role": role,
        "created_at": _TIME,
        "changed_at": _TIME,
    }
    key: dict[str, Schema] = {
        "id": {"type": "string"},
        "owner": {"type": "string"},
        "name": {"type": "string"},
        "role": role,
        "created_at": _TIME,
        "expires_at": _TIME_OR_NULL,
    }
    token: dict[str, Schema] = {
        "id": {"type": "string"},
        "created_by": {"type": "string"},
        "created_at": _TIME,
        "expires_at": _TIME,
        "max_uses": {"type": "integer"},
        "uses": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "revoked": {"type": "boolean"},
    }
    credential: dict[str, Schema] = {
        "device_id": {"type": "string"},
        "issued_at": _TIME,
        "rotated_at": _TIME_OR_NULL,
        "rotation_pending": {"type": "boolean"},
        "revoked": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "enrollment_token": _STR_OR_NULL,
    }
    kinds = ["device", "user", "api_key", "legacy"]
    return {
        "User": _object(user),
        "UserList": _object({"users": {"type": "array", "items": _ref("User")}}),
        "UserDeleted": _object({"ok": {"const": True}, "name": {"type": "string"}}),
        "Principal": _object(
            {
                "kind": {"type": "string", "enum": kinds},
                "name": {"type": "string"},
                "role": _nullable(role),
                "device_id": _STR_OR_NULL,
                "user": _STR_OR_NULL,
            },
            description="Who a credential belongs to; a device credential has no role.",
        ),
        "LoggedIn": _object(
            {"name": {"type": "string"}, "role": _nullable(role), "expires_at": _TIME},
            description="The session cookie is set (HttpOnly, SameSite=Strict, Secure over TLS).",
        ),
        "LoggedOut": _object({"ok": {"const": True}}),
        "ApiKey": _object(key),
        "ApiKeyCreated": _object(
            {**key, "key": {"type": "string", "description": "The key itself: shown only in this answer."}}
        ),
        "ApiKeyList": _object({"api_keys": {"type": "array", "items": _ref("ApiKey")}}),
        "Deleted": _object({"ok": {"const": True}, "id": {"type": "string"}}),
        "EnrollmentToken": _object(token),
        "EnrollmentTokenCreated": _object(
            {
                **token,
                "token": {"type": "string", "description": "The token itself: shown only in this answer."},
            }
        ),
        "EnrollmentTokenList": _object(
            {"enrollment_tokens": {"type": "array", "items": _ref("EnrollmentToken")}}
        ),
        "Enrolled": _object(
            {
                "device_id": {"type": "string"},
                "credential": {"type": "string", "description": "The device's credential: shown only here."},
                "issued_at": _TIME,
            }
        ),
        "DeviceCredential": _object(credential, required=["device_id"]),
        "CredentialRevoked": _object({"ok": {"const": True}, **credential}),
        "CredentialRotated": _object(
            {"ok": {"const": True}, "rotated": {"type": "boolean"}, **credential},
            required=["ok", "rotated", "device_id"],
        ),
        "DeviceRemoved": _object(
            {
                "ok": {"const": True},
                "device_id": {"type": "string"},
                "samples": {"type": "integer", "minimum": 0},
                "presence_events": {"type": "integer", "minimum": 0},
                "commands": {"type": "integer", "minimum": 0},
                "credential": {"type": "boolean"},
            },
            description="Rows deleted per table; `credential` is true when the device had one.",
        ),
        "DeviceReset": _object(
            {"ok": {"const": True}, "device_id": {"type": "string"}, "had_credential": {"type": "boolean"}}
        ),
        "AuditEvent": _object(
            {
                "id": {"type": "integer"},
                "at": _TIME,
                "actor_kind": {"type": "string", "enum": [*kinds, "anonymous"]},
                "actor": {"type": "string"},
                "action": {"type": "string"},
                "target": _STR_OR_NULL,
                "address": _STR_OR_NULL,
                "detail": _OBJECT_OR_NULL,
            }
        ),
        "AuditLog": _object({"events": {"type": "array", "items": _ref("AuditEvent")}}),
    }


def _error(description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _ok(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_RESPONSES: dict[str, Schema] = {
    "Unauthorized": _error("No valid token (`X-Auth-Token` or `Authorization: Bearer`)."),
    "Forbidden": _error("The credential's role (or device) does not allow this."),
    "NotFound": _error("Unknown device or command, or no such path."),
    "Conflict": _error("The command is already settled (acknowledged or expired)."),
    "TooLarge": _error("The body is over the hub's frame limit (1 MiB by default)."),
    "Invalid": _error("A malformed body, path or query parameter; `detail` says which."),
    "TooManyAttempts": {
        **_error("Too many wrong tokens from this address: even the right one waits `Retry-After` s."),
        "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
    },
    "Unavailable": {
        **_error("The database is failing (disk full, locked, read-only): retry after `Retry-After` s."),
        "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
    },
}


def _use(name: str) -> Schema:
    return {"$ref": f"#/components/responses/{name}"}


def _limit(default: int, maximum: int) -> Schema:
    return {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": f"At most this many items (newest first); {default} when absent.",
        "schema": {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
    }


_EMPTY: Schema = {"type": "string", "maxLength": 0}


def _time_param(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description + " ISO-8601 (naive times are UTC) or epoch seconds; empty is absent.",
        "schema": {"anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}, _EMPTY]},
    }


_PARAMETERS: dict[str, Schema] = {
    "DeviceId": {
        "name": "device_id",
        "in": "path",
        "required": True,
        "description": "The device's id: a letter or digit, then up to 127 of `A-Z a-z 0-9 . _ : @ -`.",
        "schema": {"type": "string", "pattern": DEVICE_ID_PATTERN},
    },
    "CommandId": {
        "name": "command_id",
        "in": "path",
        "required": True,
        "description": "The command's id, as returned when it was created.",
        "schema": {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
    },
}


def _op(
    summary: str,
    responses: dict[str, Schema],
    *,
    description: str = "",
    parameters: list[Schema] | None = None,
    body: str | None = None,
    public: bool = False,
    tag: str,
) -> Schema:
    """One operation; protected ones get the 401 answer, those with a body 413 and 422."""
    answers = dict(responses)
    if not public:
        answers.update(
            {
                "401": _use("Unauthorized"),
                "403": _use("Forbidden"),
                "429": _use("TooManyAttempts"),
                "503": _use("Unavailable"),
            }
        )
    if body is not None:
        answers.update({"413": _use("TooLarge"), "422": _use("Invalid")})
    op: Schema = {"summary": summary, "tags": [tag]}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    if public:
        op["security"] = []
    op["responses"] = dict(sorted(answers.items()))
    return op


def _paths() -> dict[str, Schema]:
    device = _use_param("DeviceId")
    command = _use_param("CommandId")
    invalid, not_found = _use("Invalid"), _use("NotFound")
    # A device id with a "/" (sent as %2F) makes another path: the router answers 404 for it.
    by_device = {"404": not_found, "422": invalid}
    return {
        "/health": {
            "get": _op(
                "Liveness and counts",
                {
                    "200": _ok("The hub is up and can store.", _ref("Health")),
                    "503": _ok("The hub is up but its database fails (`ok` is false).", _ref("Health")),
                },
                public=True,
                tag="hub",
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics (text format)",
                {
                    "200": {
                        "description": "The hub's own figures (`monitor_hub_*`: sockets, devices online,"
                        " samples written, backlog, commit time and command push latency histograms) and"
                        " each device's latest core metrics (`monitor_device_*`, label `device`).",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                description="Prometheus exposition format 0.0.4. Viewer role or above; a scraper sends"
                " `Authorization: Bearer <API key>` (docs/operations.md).",
                tag="hub",
            )
        },
        "/ingest": {
            "post": _op(
                "Store one sample (the original HTTP agent)",
                {"200": _ok("Stored (committed) and published.", _ref("IngestAccepted"))},
                description="Answers after the sample is committed. An HTTP-only device counts as"
                " online for 30 s after its last ingest.",
                body="IngestPayload",
                tag="agents",
            )
        },
        "/devices": {
            "get": _op(
                "All devices",
                {"200": _ok("Every device, by id.", {"type": "array", "items": _ref("Device")})},
                parameters=[
                    {
                        "name": "tag",
                        "in": "query",
                        "required": False,
                        "description": "Only the devices with this tag (an operator's or the agent's).",
                        "schema": {"type": "string"},
                    }
                ],
                tag="devices",
            )
        },
        "/commands/bulk": {
            "post": _op(
                "Queue one command on many devices",
                {
                    "200": _ok(
                        "Queued on each device (pushed at once to connected agents).", _ref("BulkCommand")
                    ),
                    "409": _error("The `Idempotency-Key` was used before for a different command."),
                },
                description="The `devices` listed (each once), or every device with `tag`. Each device"
                " gets an ordinary command; they share the Idempotency-Key `bulk:<id>`, so the same"
                " request with the same `Idempotency-Key` header queues nothing twice.",
                parameters=[
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "The bulk command's id (1-128 of letters, digits and `._:-`);"
                        " a random one when absent.",
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
                    }
                ],
                body="BulkCommandCreate",
                tag="commands",
            )
        },
        "/commands/bulk/{bulk_id}": {
            "get": _op(
                "A bulk command's progress",
                {
                    "200": _ok("Counts by outcome and every device's command.", _ref("BulkCommand")),
                    "404": not_found,
                    "422": invalid,
                },
                parameters=[
                    {
                        "name": "bulk_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
                    },
                    {
                        **_limit(MAX_BULK, MAX_BULK),
                        "description": "At most this many commands, failed and still open ones first"
                        " (`truncated` says when some were left out); the counts cover every part.",
                    },
                ],
                tag="commands",
            )
        },
        "/devices/{device_id}": {
            "get": _op(
                "One device with its latest sample",
                {"200": _ok("The device.", _ref("DeviceDetail")), **by_device},
                parameters=[device],
                tag="devices",
            ),
            "patch": _op(
                "Rename or tag a device (operator)",
                {"200": _ok("The device as stored now.", _ref("DeviceUpdated")), **by_device},
                description='`name` sets the display name (`""` or null clears it); `tags` replaces'
                " the tags operators set (the agent's own tags come from its hello). Dashboards get a"
                " `device` event.",
                parameters=[device],
                body="DeviceUpdate",
                tag="devices",
            ),
            "delete": _op(
                "Remove a device with its history (admin)",
                {"200": _ok("Removed: what was deleted.", _ref("DeviceRemoved")), **by_device},
                description="Deletes the device, its samples, presence events and commands, and its"
                " credential, in one transaction; history is not kept (keep the device to keep it)."
                " A connected agent is closed with 4004; dashboards get a `device_removed` event."
                " An agent that still reports with another credential comes back as a new device."
                " 404 when the hub knows neither the device nor a credential for it.",
                parameters=[device],
                tag="devices",
            ),
        },
        "/devices/{device_id}/metrics": {
            "get": _op(
                "Stored samples, raw or averaged",
                {
                    "200": _ok("Samples, oldest first (empty for an unknown device).", _ref("Metrics")),
                    **by_device,
                },
                description="The newest `limit` samples between `since` and `until`, returned oldest"
                " first; with `step`, the newest `limit` averages over `step`-second buckets instead."
                " When the range holds more, `truncated` is true and `next_until` pages back in time.",
                parameters=[
                    device,
                    _time_param("since", "Samples taken at or after this time."),
                    _time_param("until", "Samples taken at or before this time."),
                    _limit(1000, 10000),
                    {
                        "name": "step",
                        "in": "query",
                        "required": False,
                        "description": "Average over buckets of this many seconds (raw samples when"
                        " absent or empty).",
                        "schema": {
                            "anyOf": [
                                {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1e9},
                                _EMPTY,
                            ]
                        },
                    },
                ],
                tag="devices",
            )
        },
        "/devices/{device_id}/events": {
            "get": _op(
                "Presence history",
                {"200": _ok("Transitions, newest first.", _ref("PresenceEvents")), **by_device},
                parameters=[device, _limit(100, 1000)],
                tag="devices",
            )
        },
        "/devices/{device_id}/commands": {
            "post": _op(
                "Queue a command",
                {
                    "200": _ok("Stored, and pushed at once to a connected agent.", _ref("CommandCreated")),
                    "409": _error("The `Idempotency-Key` was used before for a different command."),
                    **by_device,
                },
                description="A device never seen yet is allowed: the command waits for it. Commands"
                " are delivered in order, per device.",
                parameters=[
                    device,
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "Retrying with the same key returns the command the first request"
                        " created (`duplicate: true`) instead of queueing another.",
                        "schema": {"type": "string", "maxLength": 200},
                    },
                ],
                body="CommandCreate",
                tag="commands",
            ),
            "get": _op(
                "A device's commands",
                {"200": _ok("Newest first.", _ref("CommandList")), **by_device},
                parameters=[device, _limit(100, 1000)],
                tag="commands",
            ),
        },
        "/devices/{device_id}/commands/next": {
            "get": _op(
                "The oldest open command (the polling agent)",
                {
                    "200": _ok(
                        "The command (now marked delivered), or `null` when none is open.",
                        _nullable(_ref("NextCommand")),
                    ),
                    **by_device,
                },
                parameters=[device],
                tag="agents",
            )
        },
        "/devices/{device_id}/commands/{command_id}": {
            "get": _op(
                "One command",
                {"200": _ok("The command.", _ref("Command")), **by_device},
                parameters=[device, command],
                tag="commands",
            ),
            "delete": _op(
                "Cancel a command",
                {
                    "200": _ok("Cancelled (again: cancelling twice is allowed).", _ref("CommandCancelled")),
                    "409": _use("Conflict"),
                    **by_device,
                },
                parameters=[device, command],
                tag="commands",
            ),
        },
        "/devices/{device_id}/commands/{command_id}/ack": {
            "post": _op(
                "Acknowledge a command (the polling agent)",
                {"200": _ok("The command's state after the ack.", _ref("AckResult")), **by_device},
                description="The first acknowledgement is stored; once acknowledged a command is never"
                " returned by `next` again.",
                parameters=[device, command],
                body="CommandAckBody",
                tag="agents",
            )
        },
        **_identity_paths(),
        **_alert_paths(),
        **_release_paths(),
        "/ui/session": {
            "get": {
                "summary": "Whether the request carries a dashboard session",
                "tags": ["hub"],
                "security": [{"session": []}],
                "responses": {
                    "200": _ok("Logged in.", _ref("SessionState")),
                    "401": _ok("No valid session cookie.", _ref("SessionState")),
                },
            }
        },
        "/openapi.json": {
            "get": _op(
                "This document",
                {"200": _ok("OpenAPI 3.1.", {"type": "object"})},
                public=True,
                tag="hub",
            )
        },
        "/docs": {
            "get": _op(
                "This document, readable in a browser",
                {
                    "200": {
                        "description": "An HTML page.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
                public=True,
                tag="hub",
            )
        },
    }


def _identity_paths() -> dict[str, Schema]:
    """DESIGN §10. Roles: viewer reads, operator also commands, admin also everything here."""
    device = _use_param("DeviceId")
    invalid, not_found = _use("Invalid"), _use("NotFound")
    by_device = {"404": not_found, "422": invalid}
    conflict = _error("Contradicts stored state (a name taken, the last admin, an enrolled device).")

    def named(name: str, description: str) -> Schema:
        return {
            "name": name,
            "in": "path",
            "required": True,
            "description": description,
            "schema": {"type": "string"},
        }

    user, key, token = (
        named("name", "A user's name."),
        named("key_id", "The API key's id (not the key)."),
        named("token_id", "The enrollment token's id (not the token)."),
    )
    throttled = {"429": _use("TooManyAttempts"), "503": _use("Unavailable")}
    return {
        "/enrollment-tokens": {
            "post": _op(
                "Create an enrollment token (admin)",
                {"201": _ok("The token, shown only now.", _ref("EnrollmentTokenCreated"))},
                description="Agents exchange it at `POST /enroll` for their own credential, until it"
                " expires or has been used `max_uses` times.",
                body="EnrollmentTokenCreate",
                tag="identity",
            ),
            "get": _op(
                "Enrollment tokens not deleted (admin)",
                {
                    "200": _ok(
                        "Oldest first; the tokens themselves are never shown again.",
                        _ref("EnrollmentTokenList"),
                    )
                },
                tag="identity",
            ),
        },
        "/enrollment-tokens/{token_id}": {
            "delete": _op(
                "Delete an enrollment token (admin)",
                {"200": _ok("It enrolls nobody from now on.", _ref("Deleted")), "404": not_found},
                parameters=[token],
                tag="identity",
            )
        },
        "/enroll": {
            "post": _op(
                "Exchange an enrollment token for this device's credential",
                {
                    "201": _ok("The device's credential, shown only now.", _ref("Enrolled")),
                    "401": _error("The enrollment token is unknown, expired, deleted or used up."),
                    "409": _error("The device already holds a credential; an admin must reset it first."),
                    **throttled,
                },
                description="Needs no other credential. The agent presents the credential from then on"
                " (`Authorization: Bearer`); it works only for this device's own routes.",
                body="EnrollRequest",
                public=True,
                tag="identity",
            )
        },
        "/devices/{device_id}/credential": {
            "get": _op(
                "A device's credential state (never the credential)",
                {
                    "200": _ok(
                        "Issued/rotated times, revoked; `credential: null` if none.", {"type": "object"}
                    ),
                    **by_device,
                },
                parameters=[device],
                tag="identity",
            )
        },
        "/devices/{device_id}/revoke": {
            "post": _op(
                "Revoke a device's credential (admin)",
                {
                    "200": _ok("Refused from now on; re-enrolling needs a reset.", _ref("CredentialRevoked")),
                    **by_device,
                },
                parameters=[device],
                tag="identity",
            )
        },
        "/devices/{device_id}/rotate": {
            "post": _op(
                "Rotate a connected device's credential (admin)",
                {
                    "200": _ok(
                        "The agent stored the new credential; the old one stopped working.",
                        _ref("CredentialRotated"),
                    ),
                    "202": _ok(
                        "Sent; not confirmed yet: the old credential works until the agent confirms.",
                        _ref("CredentialRotated"),
                    ),
                    "409": _error(
                        "The device is not connected with its credential, is revoked, or a"
                        " rotation awaits its answer."
                    ),
                    **by_device,
                },
                description="The new credential goes over the agent's socket (`credential` frame); the"
                " agent stores it durably and answers `credential_saved`; only then is the old one retired.",
                parameters=[device],
                tag="identity",
            )
        },
        "/devices/{device_id}/reset": {
            "post": _op(
                "Forget a device's credential so it may enroll again (admin)",
                {
                    "200": _ok("Done (also when it had none).", _ref("DeviceReset")),
                    "422": invalid,
                    "404": not_found,
                },
                parameters=[device],
                tag="identity",
            )
        },
        "/users": {
            "post": _op(
                "Create a user (admin)",
                {"201": _ok("The user (never the password).", _ref("User")), "409": conflict},
                body="UserCreate",
                tag="identity",
            ),
            "get": _op("All users (admin)", {"200": _ok("By name.", _ref("UserList"))}, tag="identity"),
        },
        "/users/{name}": {
            "patch": _op(
                "Change a user's password or role (admin)",
                {
                    "200": _ok("The user; a new password ends their sessions.", _ref("User")),
                    "404": not_found,
                    "409": conflict,
                },
                parameters=[user],
                body="UserUpdate",
                tag="identity",
            ),
            "delete": _op(
                "Remove a user, their sessions and API keys (admin)",
                {"200": _ok("Removed.", _ref("UserDeleted")), "404": not_found, "409": conflict},
                parameters=[user],
                tag="identity",
            ),
        },
        "/login": {
            "post": _op(
                "Log in by name and password: sets the session cookie",
                {
                    "200": _ok("Logged in.", _ref("LoggedIn")),
                    "401": _error("Wrong name or password."),
                    "403": _error("Posted from another site (`Origin`)."),
                    **throttled,
                },
                description="Failures are throttled per address and, briefly, per user name.",
                body="LoginRequest",
                public=True,
                tag="identity",
            )
        },
        "/logout": {
            "post": _op(
                "End the session of the cookie sent (stays ended across restarts)",
                {
                    "200": _ok("Logged out (or was not logged in).", _ref("LoggedOut")),
                    "403": _error("Posted from another site."),
                },
                public=True,
                tag="identity",
            )
        },
        "/me": {
            "get": _op(
                "Who this credential belongs to",
                {"200": _ok("The principal.", _ref("Principal"))},
                tag="identity",
            )
        },
        "/api-keys": {
            "post": _op(
                "Create an API key (admin)",
                {"201": _ok("The key, shown only now.", _ref("ApiKeyCreated")), "404": not_found},
                description="For the caller's user, or for `owner`; its role is at most the owner's (403).",
                body="ApiKeyCreate",
                tag="identity",
            ),
            "get": _op(
                "API keys not deleted (admin)",
                {"200": _ok("Oldest first.", _ref("ApiKeyList"))},
                tag="identity",
            ),
        },
        "/api-keys/{key_id}": {
            "delete": _op(
                "Delete an API key (admin)",
                {"200": _ok("Refused from now on.", _ref("Deleted")), "404": not_found},
                parameters=[key],
                tag="identity",
            )
        },
        "/audit": {
            "get": _op(
                "The audit log (admin)",
                {"200": _ok("Newest first.", _ref("AuditLog")), "422": invalid},
                parameters=[_time_param("since", "Events at or after this time."), _limit(100, 1000)],
                tag="identity",
            )
        },
    }


def _alert_schemas() -> dict[str, Schema]:
    """Answers of the alert endpoints (DESIGN §11). A notifier's URL is shown as scheme and host."""
    number_or_null = _nullable({"type": "number"})
    rule: dict[str, Schema] = {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "kind": {"type": "string", "enum": ["threshold", "offline", "status"]},
        "metric": _STR_OR_NULL,
        "op": _STR_OR_NULL,
        "value": number_or_null,
        "clear_value": number_or_null,
        "for": {"type": "number", "minimum": 0},
        "severity": {"type": "string"},
        "selector": {"type": "object"},
        "notifiers": {
            "type": "array",
            "items": {"type": "integer"},
            "description": "Ids of the notifiers its alerts go to; empty: every notifier.",
        },
        "created_at": _TIME,
        "updated_at": _TIME,
    }
    silence: dict[str, Schema] = {
        "id": {"type": "integer"},
        "matchers": {"type": "object"},
        "ends_at": _TIME,
        "comment": {"type": "string"},
        "created_by": {"type": "string"},
        "created_at": _TIME,
    }
    alert: dict[str, Schema] = {
        "rule_id": {"type": "integer"},
        "rule": {"type": "string"},
        "severity": {"type": "string"},
        "kind": {"type": "string"},
        "device_id": {"type": "string"},
        "state": {"type": "string", "enum": ["pending", "firing"]},
        "silenced": {"type": "boolean"},
        "since": _TIME,
        "fired_at": _TIME_OR_NULL,
        "value": number_or_null,
    }
    return {
        "AlertRule": _object(rule),
        "AlertRuleList": _object({"rules": {"type": "array", "items": _ref("AlertRule")}}),
        "Notifier": _object(
            {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "kind": {"type": "string", "enum": ["webhook", "apprise"]},
                "url": {"type": "string", "description": "Scheme and host only: the rest may be a secret."},
                "headers": {"type": "array", "items": {"type": "string"}, "description": "Names only."},
                "created_at": _TIME,
            }
        ),
        "NotifierList": _object({"notifiers": {"type": "array", "items": _ref("Notifier")}}),
        "Silence": _object(silence),
        "SilenceList": _object({"silences": {"type": "array", "items": _ref("Silence")}}),
        "Alert": _object(alert),
        "AlertList": _object({"alerts": {"type": "array", "items": _ref("Alert")}}),
        "DeletedById": _object({"ok": {"const": True}, "id": {"type": "integer"}}),
    }


def _alert_paths() -> dict[str, Schema]:
    """DESIGN §11: rules and notifiers (admin; rules readable by viewers), silences (operator)."""
    not_found, conflict = _use("NotFound"), _error("The name is taken.")
    deleted = _ok("Deleted.", _ref("DeletedById"))

    def ident(name: str, description: str) -> Schema:
        return {
            "name": name,
            "in": "path",
            "required": True,
            "description": description,
            "schema": {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
        }

    rule, notifier = ident("rule_id", "The rule's id."), ident("notifier_id", "The notifier's id.")
    return {
        "/alert-rules": {
            "post": _op(
                "Create an alert rule (admin)",
                {"201": _ok("The rule.", _ref("AlertRule")), "409": conflict},
                description="`threshold` (`metric`, `op`, `value`, optional `clear_value` for hysteresis),"
                " `offline` or `status` (the agent reports `status: error`); `for` seconds pending"
                " before firing; `selector` tags and devices (none: every device); `notifiers` by id or"
                " name (none: every notifier; an unknown one is 422).",
                body="RuleCreate",
                tag="alerts",
            ),
            "get": _op("Alert rules", {"200": _ok("By id.", _ref("AlertRuleList"))}, tag="alerts"),
        },
        "/alert-rules/{rule_id}": {
            "get": _op(
                "One alert rule",
                {"200": _ok("The rule.", _ref("AlertRule")), "404": not_found},
                parameters=[rule],
                tag="alerts",
            ),
            "patch": _op(
                "Change an alert rule (admin)",
                {"200": _ok("The rule as changed.", _ref("AlertRule")), "404": not_found, "409": conflict},
                description="The fields given replace the rule's (`notifiers`: by id or name; null or"
                " empty: every notifier; an unknown one is 422).",
                parameters=[rule],
                body="RuleUpdate",
                tag="alerts",
            ),
            "delete": _op(
                "Delete an alert rule and its states (admin)",
                {"200": deleted, "404": not_found},
                parameters=[rule],
                tag="alerts",
            ),
        },
        "/notifiers": {
            "post": _op(
                "Create a notifier (admin)",
                {"201": _ok("The notifier (URL redacted).", _ref("Notifier")), "409": conflict},
                description=(
                    "A webhook receiving the Alertmanager webhook format, version 4 (kind webhook), or an"
                    " apprise URL such as ntfy://topic (kind apprise): a short text per group."
                ),
                body="NotifierCreate",
                tag="alerts",
            ),
            "get": _op("Notifiers (admin)", {"200": _ok("By id.", _ref("NotifierList"))}, tag="alerts"),
        },
        "/notifiers/{notifier_id}": {
            "delete": _op(
                "Delete a notifier and what its outbox holds (admin)",
                {"200": deleted, "404": not_found, "409": _error("Rules route to it.")},
                parameters=[notifier],
                tag="alerts",
            )
        },
        "/silences": {
            "post": _op(
                "Silence alerts until a time (operator)",
                {"201": _ok("The silence.", _ref("Silence"))},
                description="Notifications of alerts matching every matcher given wait until `ends_at`;"
                " those still owed then are sent.",
                body="SilenceCreate",
                tag="alerts",
            ),
            "get": _op("Silences not ended", {"200": _ok("By id.", _ref("SilenceList"))}, tag="alerts"),
        },
        "/silences/{silence_id}": {
            "delete": _op(
                "End a silence now (operator)",
                {"200": deleted, "404": not_found},
                parameters=[ident("silence_id", "The silence's id.")],
                tag="alerts",
            )
        },
        "/alerts": {
            "get": _op(
                "Alerts pending and firing now",
                {"200": _ok("By rule, then device.", _ref("AlertList"))},
                tag="alerts",
            )
        },
    }


def _release_schemas() -> dict[str, Schema]:
    """Answers of the release endpoints (DESIGN §12)."""
    rollout: dict[str, Schema] = {
        "version": {"type": "string"},
        "target": {"type": "object", "description": "`{percent}`, `{devices}` or `{tags}`."},
        "allow_downgrade": {"type": "boolean"},
        "paused": {"type": "boolean", "description": "Set when too many of its devices failed."},
        "created_at": _TIME,
    }
    release: dict[str, Schema] = {
        "version": {"type": "string"},
        "sha256": {"type": "string"},
        "signature": {"type": "string", "description": "Ed25519 over the SHA-256 (base64)."},
        "size": {"type": "integer"},
        "manifest": {"type": "object"},
        "created_at": _TIME,
        "created_by": {"type": "string"},
        "rollout": _nullable(_ref("Rollout")),
    }
    states = ["offered", "downloading", "installed", "failed", "rolled_back"]
    device: dict[str, Schema] = {
        "device_id": {"type": "string"},
        "state": {"type": "string", "enum": states},
        "reason": {"type": "string"},
        "updated_at": _TIME,
    }
    counts = _object({state: {"type": "integer"} for state in states})
    return {
        "Rollout": _object(rollout),
        "RolloutCreated": _object({**rollout, "offered": {"type": "integer"}}),
        "Release": _object(release),
        "ReleaseList": _object({"releases": {"type": "array", "items": _ref("Release")}}),
        "ReleaseDetail": _object(
            {**release, "counts": counts, "devices": {"type": "array", "items": _object(device)}}
        ),
    }


def _release_paths() -> dict[str, Schema]:
    """DESIGN §12: releases (viewer), rollouts (admin), the bundle (agents with their credential)."""
    not_found = _use("NotFound")
    version = {
        "name": "version",
        "in": "path",
        "required": True,
        "description": "The release's version, as published (`monitor-server releases publish`).",
        "schema": {"type": "string"},
    }
    return {
        "/releases": {
            "get": _op(
                "Published releases", {"200": _ok("Oldest first.", _ref("ReleaseList"))}, tag="releases"
            )
        },
        "/releases/{version}": {
            "get": _op(
                "One release: its rollout and each device's state, with counts",
                {"200": _ok("The release.", _ref("ReleaseDetail")), "404": not_found},
                parameters=[version],
                tag="releases",
            )
        },
        "/releases/{version}/rollout": {
            "post": _op(
                "Roll a release out (admin)",
                {
                    "201": _ok(
                        "The rollout, and how many agents here got the offer.", _ref("RolloutCreated")
                    ),
                    "404": not_found,
                },
                description="Exactly one of `percent` (a stable hash of the device id), `devices` or"
                " `tags`; replaces the version's rollout. Connected agents that run under the update"
                " launcher and another version are offered it at once, others when they connect.",
                parameters=[version],
                body="RolloutCreate",
                tag="releases",
            )
        },
        "/releases/{version}/bundle": {
            "get": _op(
                "The release's bundle (a device credential may download it)",
                {
                    "200": {
                        "description": "The bundle file.",
                        "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "404": not_found,
                },
                parameters=[version],
                tag="releases",
            )
        },
    }


def _use_param(name: str) -> Schema:
    return {"$ref": f"#/components/parameters/{name}"}


@cache
def document() -> Schema:
    """The OpenAPI document (built once; it depends on nothing but the code)."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Fleet monitor hub", "version": __version__, "description": _DESCRIPTION},
        "tags": [
            {"name": "agents", "description": "What the original HTTP agent calls."},
            {"name": "devices", "description": "What the hub knows of each device."},
            {"name": "commands", "description": "Commands for devices: queue, follow, cancel."},
            {"name": "identity", "description": "Users, sessions, API keys, device credentials, audit."},
            {"name": "alerts", "description": "Alert rules, notifiers, silences and the alerts now."},
            {"name": "releases", "description": "Agent releases: rollouts, per-device progress, bundles."},
            {"name": "hub", "description": "The hub itself."},
        ],
        "paths": _paths(),
        "components": {
            "schemas": {**_request_schemas(), **_response_schemas()},
            "parameters": _PARAMETERS,
            "responses": _RESPONSES,
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"},
                "bearer": {"type": "http", "scheme": "bearer", "description": "The same token."},
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": COOKIE_NAME,
                    "description": "The dashboard's session (log in at /ui). Writes also need the"
                    " `X-Monitor-UI: 1` header and a same-site `Origin`.",
                },
            },
        },
        "security": [{"token": []}, {"bearer": []}, {"session": []}],
    }


async def openapi_json(request: Request) -> Response:
    """Public: the document describes the API and holds no secret."""
    return JSONResponse(document(), headers={"Cache-Control": "no-cache"})


async def docs(request: Request) -> Response:
    return HTMLResponse(_docs_html(), headers=SECURITY_HEADERS)


@cache
def _docs_html() -> str:
    return resources.files("monitor_server").joinpath("static", "docs.html").read_text("utf-8")


def openapi_routes() -> list[BaseRoute]:
    return [Route("/openapi.json", openapi_json), Route("/docs", docs)]
