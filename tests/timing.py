"""One factor scales every timing in the tests, so slow CI machines do not flake."""

from __future__ import annotations

import os

SCALE = float(os.environ.get("MONITOR_TEST_TIME_SCALE", "1"))


def t(seconds: float) -> float:
    return seconds * SCALE
