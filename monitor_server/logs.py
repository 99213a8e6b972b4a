"""Logging set up once: readable lines for a terminal, JSON lines for collectors.

Secrets are never logged, at any level: every record is passed through ``RedactSecrets``
before it is written. At debug level the websockets library dumps each handshake's headers
(``< x-auth-token: ...``, ``< cookie: ...``) through ``uvicorn.error``, and at trace level
uvicorn logs ASGI scopes; the filter masks the values of the credential headers in all of them.
"""

from __future__ import annotations

import logging
import re
import sys
import time

import orjson

SECRET_HEADERS = ("x-auth-token", "proxy-authorization", "authorization", "set-cookie", "cookie")
MASK = "[redacted]"
_NAMES = "|".join(re.escape(name) for name in SECRET_HEADERS)
# "Name: value" (a header line): the value runs to the end of the line.
_HEADER_LINE = re.compile(rf"(?i)(?<![\w-])({_NAMES})(\s*:[ \t]*)([^\r\n]+)")
# 'name': 'value', "name": "value", (b'name', b'value'): reprs of dicts, JSON and ASGI header lists.
_QUOTED_PAIR = re.compile(rf"""(?i)(?<![\w-])({_NAMES})(['"]\s*[:,]\s*b?(['"]))((?:\\.|(?!\3).)+)""")


# The hub's own secrets carry a prefix (monitor_server/identity/secrets.py): masked wherever they appear.
_PREFIXED = re.compile(r"(?<![A-Za-z0-9])(mdc_|mak_|met_|msess_)[A-Za-z0-9_-]{16,}")


def redact(text: str) -> str:
    """``text`` with credential header values and the hub's prefixed secrets replaced by ``[redacted]``."""
    text = _QUOTED_PAIR.sub(lambda m: f"{m[1]}{m[2]}{MASK}", text)
    text = _HEADER_LINE.sub(lambda m: f"{m[1]}{m[2]}{MASK}", text)
    return _PREFIXED.sub(lambda m: f"{m[1]}{MASK}", text)


class RedactSecrets(logging.Filter):
    """Masks credential header values in a record's message, whichever logger it comes from."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the handler's to report
            return True
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets())  # on the handler: it sees every logger's records
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiosqlite's DEBUG lines carry every SQL parameter (credential digests, notifier URLs): never shown.
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, root.level))
