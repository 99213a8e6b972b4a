"""Enrollment (DESIGN §10): an enrollment token becomes this device's credential, kept 0600.

``POST /enroll {"token", "device_id", "hostname"}`` needs no other credential. The answer's
credential is written to ``<state>/credential`` before anything else happens, and never printed
or logged. 401: the token is unknown, expired or used up; 409: the device id already holds a
credential (an admin resets it first, ``POST /devices/{id}/reset``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import sys
import urllib.error
import urllib.request

from monitor_agent.backoff import Backoff
from monitor_agent.config import AgentConfig, public_url
from monitor_agent.credential import Credentials, CredentialStore
from monitor_agent.errors import ConfigError, EnrollmentFailed
from monitor_agent.identity import stable_device_id
from protocol.plain import decode_json, encode_json

log = logging.getLogger(__name__)

_REFUSALS = {
    401: "the enrollment token is unknown, expired or used up",
    409: "this device id already holds a credential: an admin must reset the device first "
    "(POST /devices/{id}/reset) before it enrolls again",
}


class _Unreachable(Exception):
    """No answer from one hub (connection refused, timeout, TLS): the next may answer."""


def device_id_of(config: AgentConfig) -> str:
    config.state_dir.mkdir(parents=True, exist_ok=True)
    return config.device_id or stable_device_id(config.state_dir)


def enroll(config: AgentConfig, token: str, device_id: str, hostname: str) -> str:
    """One ``POST /enroll``; the credential (to keep, never to print). Raises EnrollmentFailed.

    With several hubs, an unreachable one is skipped for the next; a refusal is final (they
    share one database, so another hub would answer the same).
    """
    hubs = config.http_urls()
    unreachable = []
    for base_url in hubs:
        try:
            return _enroll_at(base_url, config, token, device_id, hostname)
        except _Unreachable as exc:
            unreachable.append(f"hub {public_url(base_url)} unreachable: {exc}")
            if len(hubs) > 1:
                log.warning("enrollment of %s: %s", device_id, unreachable[-1])
    raise EnrollmentFailed(f"enrollment of {device_id}: {'; '.join(unreachable)}")


def _enroll_at(base_url: str, config: AgentConfig, token: str, device_id: str, hostname: str) -> str:
    request = urllib.request.Request(  # noqa: S310 - the URL scheme was validated as http(s)
        base_url + "/enroll",
        data=encode_json({"token": token, "device_id": device_id, "hostname": hostname}),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    context = config.ssl_context()
    try:
        with urllib.request.urlopen(request, timeout=config.connect_timeout, context=context) as answer:  # noqa: S310
            body = decode_json(answer.read())
    except urllib.error.HTTPError as exc:
        reason = _REFUSALS.get(exc.code, f"HTTP {exc.code}")
        raise EnrollmentFailed(f"enrollment of {device_id} refused: {reason}", exc.code) from None
    except (OSError, ssl.SSLError) as exc:
        raise _Unreachable(exc) from None
    credential = body.get("credential") if isinstance(body, dict) else None
    if not isinstance(credential, str) or not credential:
        raise EnrollmentFailed(f"enrollment of {device_id}: the hub's answer holds no credential")
    return credential


def enroll_and_keep(config: AgentConfig, token: str) -> tuple[str, CredentialStore]:
    """Enroll this device and keep its credential; the device id and the store."""
    device_id = device_id_of(config)
    credential = enroll(config, token, device_id, socket.gethostname())
    store = CredentialStore(config.state_dir)
    store.keep(credential)
    log.info("enrolled device %s; its credential is kept in %s", device_id, store.path)
    return device_id, store


async def credentials_for(config: AgentConfig) -> Credentials:
    """What ``run`` presents: the kept credential; else, with an enrollment token, a new one; else
    the legacy token (until ``monitor-agent enroll`` keeps a credential). Enrolling waits (with
    backoff) for a hub that is not up yet; a refusal raises."""
    store = CredentialStore(config.state_dir)
    if store.newest() is not None or store.previous() is not None:
        return Credentials(config.token, store)
    token = config.enrollment_secret()
    if not token:
        return Credentials(config.token, store)  # the legacy token, until a credential is kept
    backoff = Backoff(config.backoff_base, config.backoff_cap)
    while True:
        try:
            _, store = await asyncio.to_thread(enroll_and_keep, config, token)
        except EnrollmentFailed as exc:
            if exc.status is not None:
                raise
            delay = backoff.next_delay()
            log.warning("%s; retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            continue
        return Credentials(config.token, store)


def enroll_command(config: AgentConfig) -> int:
    """``monitor-agent enroll``: exit status 0 once the credential is kept, 1 if refused."""
    token = config.enrollment_secret()
    if not token:
        raise ConfigError(
            "no enrollment token: set MONITOR_AGENT_ENROLLMENT_TOKEN, --enrollment-token-file "
            "or --enrollment-token"
        )
    try:
        device_id, store = enroll_and_keep(config, token)
    except EnrollmentFailed as exc:
        print(f"monitor-agent: {exc}", file=sys.stderr)
        return 1
    print(f"enrolled device {device_id}; credential kept in {store.path} (mode 0600)")
    return 0
