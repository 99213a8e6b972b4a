"""Rotation rules of both session classes (no event loop) and the agent's credential files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from monitor_agent.credential import Credentials, CredentialStore, write_secret
from protocol.agent_session import AgentSession, CredentialReceived, HandshakeRefused, Refused
from protocol.codec import encode
from protocol.codes import ErrorCode
from protocol.errors import IllegalTransition
from protocol.frames import PROTOCOL_VERSION, CredentialFrame, Hello, Welcome
from protocol.hub_session import CloseRequested, CredentialStored, HubSession

WELCOME = Welcome(
    protocol=PROTOCOL_VERSION,
    device_id="dev-1",
    heartbeat_interval=5.0,
    ping_interval=5.0,
    ping_timeout=5.0,
    max_frame_bytes=1 << 20,
    server_time="2026-01-01T00:00:00Z",
)
HELLO = json.dumps({"type": "hello", "protocol": PROTOCOL_VERSION, "device_id": "dev-1"})
SAVED = '{"type":"credential_saved"}'


def open_hub_session() -> HubSession:
    session = HubSession()
    session.receive(HELLO)
    session.welcome(WELCOME)
    session.data_to_send()
    return session


def open_agent_session() -> AgentSession[int]:
    session = AgentSession[int](Hello(protocol=PROTOCOL_VERSION, device_id="dev-1"))
    session.receive(encode(WELCOME))
    return session


def test_hub_offers_a_credential_and_hears_it_stored() -> None:
    """An offer queues one ``credential`` frame; ``credential_saved`` answers it with CredentialStored."""
    session = open_hub_session()
    session.offer_credential("mdc_new")
    assert [json.loads(f) for f in session.data_to_send()] == [
        {"type": "credential", "credential": "mdc_new"}
    ]
    assert session.receive(SAVED) == [CredentialStored()]
    assert not session.credential_offered
    session.offer_credential("mdc_newer")  # the next rotation may start
    assert session.credential_offered


def test_hub_refuses_a_second_offer_and_offers_before_welcome() -> None:
    """One offer at a time, on an open session only."""
    session = open_hub_session()
    session.offer_credential("mdc_a")
    with pytest.raises(IllegalTransition):
        session.offer_credential("mdc_b")
    waiting = HubSession()
    waiting.receive(HELLO)
    with pytest.raises(IllegalTransition):
        waiting.offer_credential("mdc_a")


def test_hub_refuses_credential_saved_nobody_asked_for() -> None:
    """``credential_saved`` without an offer is an unexpected frame (an error frame, counted as bad)."""
    session = open_hub_session()
    assert session.receive(SAVED) == []
    (error,) = [json.loads(f) for f in session.data_to_send()]
    assert error["type"] == "error" and error["code"] == ErrorCode.UNEXPECTED_FRAME


def test_hub_credential_saved_before_hello_closes() -> None:
    """Before hello, ``credential_saved`` is refused like any other first frame."""
    (event,) = HubSession().receive(SAVED)
    assert isinstance(event, CloseRequested)


def test_agent_receives_a_credential_and_answers_once() -> None:
    """The agent's session turns a ``credential`` frame into CredentialReceived; one answer per frame."""
    session = open_agent_session()
    (event,) = session.receive(encode(CredentialFrame(credential="mdc_new")))
    assert event == CredentialReceived("mdc_new")
    assert "mdc_new" not in repr(event)  # a secret never reaches a log line through repr
    assert json.loads(session.credential_saved()) == {"type": "credential_saved"}
    with pytest.raises(IllegalTransition):
        session.credential_saved()


def test_agent_credential_before_welcome_ends_the_handshake() -> None:
    """A ``credential`` frame is no answer to hello."""
    session = AgentSession[int](Hello(protocol=PROTOCOL_VERSION, device_id="dev-1"))
    (event,) = session.receive(encode(CredentialFrame(credential="mdc_new")))
    assert isinstance(event, HandshakeRefused)


def test_agent_refuses_an_empty_credential_frame() -> None:
    """A ``credential`` frame with an empty credential is unreadable, never saved."""
    session = open_agent_session()
    (event,) = session.receive('{"type": "credential", "credential": ""}')
    assert isinstance(event, Refused)


def test_write_secret_is_private_and_whole(tmp_path: Path) -> None:
    """The file is mode 0600 and holds exactly the secret; no temporary file is left behind."""
    path = tmp_path / "state" / "credential"
    write_secret(path, "mdc_one")
    write_secret(path, "mdc_two")
    assert path.read_text() == "mdc_two\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["credential"]


def test_rotation_keeps_the_previous_and_falls_back(tmp_path: Path) -> None:
    """Newest first; refused, the previous is tried; accepted, the refused newest is dropped."""
    store = CredentialStore(tmp_path)
    store.keep("mdc_old")
    credentials = Credentials("legacy", store)
    assert credentials.headers() == {"Authorization": "Bearer mdc_old"}
    credentials.save("mdc_new")
    assert (store.newest(), store.previous()) == ("mdc_new", "mdc_old")
    assert credentials.current() == "mdc_new"
    assert credentials.refused() is True  # try the previous one at once
    assert credentials.current() == "mdc_old"
    credentials.accepted()
    assert (store.newest(), store.previous()) == ("mdc_old", None)
    assert credentials.current() == "mdc_old"
    assert credentials.refused() is False  # nothing else to try: retry slowly


def test_both_refused_keeps_both(tmp_path: Path) -> None:
    """Revoked: newest and previous refused in turn, both files stay, the cycle starts over."""
    store = CredentialStore(tmp_path)
    store.keep("mdc_old")
    store.save("mdc_new")
    credentials = Credentials("legacy", store)
    assert credentials.refused() is True
    assert credentials.refused() is False
    assert credentials.current() == "mdc_new"
    assert (store.newest(), store.previous()) == ("mdc_new", "mdc_old")


def test_legacy_token_without_a_kept_credential(tmp_path: Path) -> None:
    """No kept credential: the legacy token goes as X-Auth-Token, as the seed sent it, until one is kept."""
    store = CredentialStore(tmp_path)
    for credentials in (Credentials("dev-token"), Credentials("dev-token", store)):
        assert credentials.headers() == {"X-Auth-Token": "dev-token"}
        assert credentials.refused() is False and not credentials.device_credential
        with pytest.raises(OSError, match="legacy token"):
            credentials.save("mdc_new")
    store.keep("mdc_enrolled")  # ``monitor-agent enroll`` beside a running agent
    assert credentials.headers() == {"Authorization": "Bearer mdc_enrolled"}
