"""How the agent trusts the hub over ``wss://``/``https://``: a CA (system store or a file), optional pins.

A pin is the SHA-256 fingerprint of the hub's certificate, as printed by
``openssl x509 -noout -fingerprint -sha256``. It is checked inside the TLS handshake, before the
agent sends its token, so a certificate that verifies but does not match never sees the token.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from collections.abc import Iterable
from pathlib import Path

from monitor_agent.errors import AgentError, ConfigError

_HEX_PIN = re.compile(r"^[0-9a-f]{64}$")


class PinMismatch(AgentError, ssl.SSLCertVerificationError):
    """The hub's certificate verified but is not one of the pinned fingerprints."""

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.verify_message = f"certificate fingerprint {fingerprint} matches no --pin-sha256"
        super().__init__(self.verify_message)

    def __str__(self) -> str:
        return self.verify_message


def parse_pin(text: str) -> str:
    """Normalize one pin: 64 hex digits, colons and case as openssl prints them are accepted."""
    pin = text.strip().lower().removeprefix("sha256:").replace(":", "")
    if not _HEX_PIN.match(pin):
        raise ConfigError(f"pin_sha256 {text!r} is not a SHA-256 fingerprint (64 hex digits, colons allowed)")
    return pin


def fingerprint(der: bytes) -> str:
    """The SHA-256 fingerprint of a DER certificate, as colon-separated upper-case hex."""
    return ":".join(f"{byte:02X}" for byte in hashlib.sha256(der).digest())


def check_pin(der: bytes | None, pins: frozenset[str]) -> None:
    """Raise ``PinMismatch`` unless the certificate's fingerprint is one of ``pins``."""
    if not pins:
        return
    if der is None:
        raise PinMismatch("(none: the hub sent no certificate)")
    if hashlib.sha256(der).hexdigest() not in pins:
        raise PinMismatch(fingerprint(der))


def client_context(ca_file: Path | None = None, pins: Iterable[str] = ()) -> ssl.SSLContext:
    """A verifying client context: the system trust store, or only ``ca_file``; plus pins if any."""
    if ca_file is not None and not ca_file.is_file():
        raise ConfigError(f"ca_file {ca_file} does not exist or is not a file")
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    except ssl.SSLError as exc:
        raise ConfigError(f"ca_file {ca_file} holds no usable PEM certificate: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    normalized = frozenset(parse_pin(pin) for pin in pins)
    if normalized:
        # Both I/O styles: asyncio (websockets) wraps a BIO, urllib wraps a socket.
        context.sslobject_class = _pinned_object(normalized)
        context.sslsocket_class = _pinned_socket(normalized)
    return context


def _pinned_object(pins: frozenset[str]) -> type[ssl.SSLObject]:
    class PinnedSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            super().do_handshake()  # raises SSLWantReadError until the handshake is complete
            check_pin(self.getpeercert(binary_form=True), pins)

    return PinnedSSLObject


def _pinned_socket(pins: frozenset[str]) -> type[ssl.SSLSocket]:
    class PinnedSSLSocket(ssl.SSLSocket):
        def do_handshake(self, block: bool = False) -> None:
            super().do_handshake(block)
            check_pin(self.getpeercert(binary_form=True), pins)

    return PinnedSSLSocket


def describe_failure(exc: ssl.SSLError, url: str, ca_file: Path | None) -> str:
    """One line an operator can act on: what failed, against which trust, and what to change."""
    detail = getattr(exc, "verify_message", None)
    if isinstance(exc, PinMismatch):
        reason = str(exc)
    else:
        reason = "certificate verify failed" + (f" ({detail})" if detail else f": {exc}")
    trust = f"the CA file {ca_file}" if ca_file is not None else "the system trust store"
    if isinstance(exc, PinMismatch):
        hint = "update --pin-sha256 (MONITOR_AGENT_PIN_SHA256) if the hub's certificate was renewed"
    else:
        hint = "point --ca-file (MONITOR_AGENT_CA_FILE) at the CA that signed the hub's certificate"
    return f"TLS verification of {url} against {trust} failed: {reason}; {hint}"
