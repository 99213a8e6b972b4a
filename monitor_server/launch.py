"""The ``monitor-server`` command: on a machine where only the agent is installed, say how to get
the hub instead of failing on an import (the hub's libraries are the ``hub`` extra)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

# One module of each library the hub imports at start (the distribution names differ for some).
HUB_MODULES = ("starlette", "uvicorn", "aiosqlite", "pydantic_settings", "msgspec", "orjson", "argon2")


def missing_hub_modules() -> list[str]:
    return [name for name in HUB_MODULES if importlib.util.find_spec(name) is None]


def main(argv: Sequence[str] | None = None) -> None:
    if missing := missing_hub_modules():
        sys.exit(
            f"monitor-server: the hub's libraries are not installed ({', '.join(missing)}); "
            "this installation has the agent only. Install the hub with: pip install 'monitor[hub]'"
        )
    from monitor_server.cli import main as run  # the hub's imports, now known to be there

    run(argv)
