"""Credential header values are masked in log records, whatever shape the message has."""

from __future__ import annotations

import logging

import pytest

from monitor_server.logs import RedactSecrets, configure, redact

SECRET = "s3cr3t-value-91f2"


@pytest.mark.parametrize(
    "text",
    [
        f"< x-auth-token: {SECRET}",  # websockets' handshake dump (debug)
        f"< Authorization: Bearer {SECRET}",
        f"> set-cookie: monitor_session={SECRET}; Path=/; HttpOnly",
        f"scope={{'headers': [(b'host', b'h'), (b'cookie', b'monitor_session={SECRET}')]}}",  # ASGI scope
        f"{{'X-Auth-Token': '{SECRET}', 'accept': '*/*'}}",  # a dict of headers
        f'{{"authorization": "Bearer {SECRET}"}}',  # JSON
    ],
)
def test_secret_header_values_are_masked(text: str) -> None:
    """Header lines, ASGI header lists, dict reprs and JSON all lose the credential's value."""
    masked = redact(text)
    assert SECRET not in masked and "[redacted]" in masked


def test_other_headers_and_text_are_kept() -> None:
    """Only credential headers are masked; the rest of the message is untouched."""
    text = "< user-agent: curl/8  {'host': 'h', 'x-auth-token': 'x'}"
    assert redact(text) == "< user-agent: curl/8  {'host': 'h', 'x-auth-token': '[redacted]'}"


def test_filter_masks_formatted_arguments() -> None:
    """A record whose secret is in its arguments (``"< %s: %s"``) is masked once formatted."""
    record = logging.LogRecord(
        "uvicorn.error", logging.DEBUG, __file__, 1, "< %s: %s", ("Cookie", SECRET), None
    )
    assert RedactSecrets().filter(record)
    assert record.getMessage() == "< Cookie: [redacted]"


def test_debug_level_never_shows_aiosqlite_parameters() -> None:
    """aiosqlite logs each statement with its parameters at DEBUG: kept at INFO even with the hub at debug."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("aiosqlite").level)
    try:
        configure("debug", "text")
        assert root.isEnabledFor(logging.DEBUG)
        assert not logging.getLogger("aiosqlite").isEnabledFor(logging.DEBUG)
        configure("warning", "text")
        assert not logging.getLogger("aiosqlite").isEnabledFor(logging.INFO)
    finally:
        root.handlers[:], level, aiosqlite_level = saved
        root.setLevel(level)
        logging.getLogger("aiosqlite").setLevel(aiosqlite_level)
