"""The agent's TLS trust: CA file or system store, fingerprint pins checked inside the handshake."""

from __future__ import annotations

import hashlib
import socket
import ssl
import threading
from pathlib import Path

import pytest
import trustme

from monitor_agent.config import load_config
from monitor_agent.errors import ConfigError
from monitor_agent.tls import PinMismatch, check_pin, client_context, describe_failure, fingerprint, parse_pin


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A throwaway certificate authority."""
    return trustme.CA()


@pytest.fixture(scope="module")
def leaf(ca: trustme.CA) -> trustme.LeafCert:
    """A hub certificate for localhost signed by ``ca``."""
    return ca.issue_cert("localhost", "127.0.0.1")


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def leaf_der(leaf: trustme.LeafCert) -> bytes:
    return ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())


def server_context(leaf: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    return context


def bio_handshake(client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext) -> None:
    """Run a TLS handshake between two memory BIOs (the way asyncio drives TLS), no sockets."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client_done = server_done = False
    for _ in range(10):
        if not client_done:
            try:
                client.do_handshake()
                client_done = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        if not server_done:
            try:
                server.do_handshake()
                server_done = True
            except ssl.SSLWantReadError:
                pass
        c_in.write(s_out.read())
        if client_done and server_done:
            return
    raise AssertionError("handshake did not finish")


def test_parse_pin_accepts_openssl_output_and_plain_hex(leaf: trustme.LeafCert) -> None:
    """A pin may be written as openssl prints it (colons, upper case) or as plain hex."""
    digest = hashlib.sha256(leaf_der(leaf)).hexdigest()
    assert parse_pin(fingerprint(leaf_der(leaf))) == digest
    assert parse_pin(f"  sha256:{digest.upper()} ") == digest


@pytest.mark.parametrize("bad", ["", "abc", "zz" * 32, "ab" * 31, "ab" * 33])
def test_parse_pin_refuses_what_is_not_a_sha256(bad: str) -> None:
    """Anything but 64 hex digits is a configuration error that names the value."""
    with pytest.raises(ConfigError, match="not a SHA-256 fingerprint"):
        parse_pin(bad)


def test_check_pin_accepts_a_listed_fingerprint_and_names_a_foreign_one(leaf: trustme.LeafCert) -> None:
    """The right fingerprint passes; another certificate fails with its own fingerprint in the message."""
    der = leaf_der(leaf)
    check_pin(der, frozenset())
    check_pin(der, frozenset({hashlib.sha256(der).hexdigest(), "0" * 64}))
    with pytest.raises(PinMismatch, match=fingerprint(der)) as caught:
        check_pin(der, frozenset({"0" * 64}))
    assert isinstance(caught.value, ssl.SSLCertVerificationError)


def test_context_trusts_the_given_ca_only(leaf: trustme.LeafCert, ca_file: Path) -> None:
    """With a CA file the handshake verifies; a certificate from another CA is refused."""
    bio_handshake(client_context(ca_file), server_context(leaf))
    stranger = trustme.CA().issue_cert("localhost")
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        bio_handshake(client_context(ca_file), server_context(stranger))


def test_system_store_context_verifies_hostnames() -> None:
    """Without a CA file the context uses the system store and checks the hub's name."""
    context = client_context()
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_pin_is_checked_inside_the_bio_handshake(leaf: trustme.LeafCert, ca_file: Path) -> None:
    """asyncio's TLS path: the pinned certificate connects, any other pin aborts the handshake."""
    good = fingerprint(leaf_der(leaf))
    bio_handshake(client_context(ca_file, [good]), server_context(leaf))
    with pytest.raises(PinMismatch):
        bio_handshake(client_context(ca_file, ["ab" * 32]), server_context(leaf))


def test_pin_is_checked_on_blocking_sockets(leaf: trustme.LeafCert, ca_file: Path) -> None:
    """urllib's TLS path (wrap_socket) enforces the pin as well."""
    server_ctx = server_context(leaf)
    left, right = socket.socketpair()
    # The server side fails too when the client aborts; only the client's error matters here.
    server = threading.Thread(target=_serve_one, args=(server_ctx, right), daemon=True)
    server.start()
    try:
        with pytest.raises(PinMismatch):
            client_context(ca_file, ["cd" * 32]).wrap_socket(left, server_hostname="localhost")
    finally:
        left.close()
        server.join(timeout=5)


def _serve_one(context: ssl.SSLContext, sock: socket.socket) -> None:
    try:
        with context.wrap_socket(sock, server_side=True):
            pass
    except (ssl.SSLError, OSError):
        pass
    finally:
        sock.close()


def test_missing_or_empty_ca_file_is_a_configuration_error(tmp_path: Path) -> None:
    """A CA file that does not exist or holds no certificate fails at start with its path."""
    with pytest.raises(ConfigError, match="does not exist"):
        client_context(tmp_path / "nope.pem")
    empty = tmp_path / "empty.pem"
    empty.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="no usable PEM certificate"):
        client_context(empty)


def test_failure_description_names_trust_reason_and_fix(tmp_path: Path) -> None:
    """The logged line says what was checked against what, why it failed and which setting to change."""
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "unable to get local issuer certificate"
    text = describe_failure(error, "wss://hub:8443/ws/agent", tmp_path / "ca.pem")
    assert "wss://hub:8443/ws/agent" in text and str(tmp_path / "ca.pem") in text
    assert "unable to get local issuer certificate" in text and "--ca-file" in text
    pinned = describe_failure(PinMismatch("AA:BB"), "wss://hub/ws/agent", None)
    assert "system trust store" in pinned and "AA:BB" in pinned and "--pin-sha256" in pinned


def test_config_reads_ca_file_and_pins_from_env_and_flags(ca_file: Path, leaf: trustme.LeafCert) -> None:
    """MONITOR_AGENT_CA_FILE / MONITOR_AGENT_PIN_SHA256 (comma-separated) and the flags reach the context."""
    pin = fingerprint(leaf_der(leaf))
    env = {
        "MONITOR_AGENT_SERVER": "wss://hub.example:8443",
        "MONITOR_AGENT_CA_FILE": str(ca_file),
        "MONITOR_AGENT_PIN_SHA256": f"{pin}, {'ab' * 32}",
    }
    config = load_config({}, environ=env)
    assert config.ca_file == ca_file and config.pin_sha256 == [pin, "ab" * 32]
    context = config.ssl_context()
    assert context is not None and context.sslobject_class is not ssl.SSLObject
    flagged = load_config({"pin_sha256": "cd" * 32}, environ=env)
    assert flagged.pin_sha256 == ["cd" * 32]


def test_config_without_tls_has_no_context_and_refuses_tls_only_keys(ca_file: Path) -> None:
    """Plain http/ws needs no context; a CA file or pin with a plain URL is a mistake said at start."""
    assert load_config({"server": "http://hub:8000"}, environ={}).ssl_context() is None
    with pytest.raises(ConfigError, match="need an https:// or wss://"):
        load_config({"server": "ws://hub:8000", "ca_file": str(ca_file)}, environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config({"server": "https://hub", "ca_file": "/nonexistent/ca.pem"}, environ={})
    with pytest.raises(ConfigError, match="not a SHA-256"):
        load_config({"server": "https://hub", "pin_sha256": "beef"}, environ={})
