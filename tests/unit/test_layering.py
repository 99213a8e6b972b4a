"""The import contracts of `make lint` (pyproject.toml [tool.importlinter]), checked at run time too.

``lint-imports`` reads import statements; these tests import every module for real, in a fresh
interpreter, and look at ``sys.modules``: nothing reached through ``importlib`` slips by either.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contracts: list[dict[str, Any]] = config["contracts"]
    return contracts


def _forbidden_for_protocol() -> set[str]:
    (contract,) = [
        c for c in _contracts() if c["type"] == "forbidden" and c["source_modules"] == ["protocol"]
    ]
    return set(contract["forbidden_modules"])


def _modules(package: str) -> list[str]:
    """Every module of ``package`` by its file (``routes/`` and ``ui/`` have no ``__init__``)."""
    names = []
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__main__":
            continue  # runs the program
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _loaded_after_importing(modules: list[str], touch_protocol_names: bool = False) -> set[str]:
    """Top-level names in ``sys.modules`` after a fresh interpreter imports ``modules``."""
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        # protocol loads its submodules on first use of a name (PEP 562): use them all.
        + (
            "import protocol\nfor name in protocol.__all__: getattr(protocol, name)\n"
            if touch_protocol_names
            else ""
        )
        + "print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return set(out.stdout.split())


def test_protocol_contract_lists_what_the_runtime_check_knows() -> None:
    """The forbidden list covers at least the libraries test_protocol.py checks at run time."""
    assert {"asyncio", "starlette", "websockets", "aiosqlite", "psutil", "uvicorn", "pydantic_settings"} <= (
        _forbidden_for_protocol()
    )


def test_hub_and_agent_are_independent_in_the_contract() -> None:
    """`make lint` keeps monitor_server and monitor_agent from importing each other."""
    assert any(
        c["type"] == "independence" and set(c["modules"]) == {"monitor_server", "monitor_agent"}
        for c in _contracts()
    )


def test_all_of_protocol_loads_nothing_forbidden() -> None:
    """Every protocol module and every public name: no forbidden library gets loaded (pydantic may)."""
    loaded = _loaded_after_importing(_modules("protocol"), touch_protocol_names=True)
    assert loaded & _forbidden_for_protocol() == set()


@pytest.mark.parametrize(
    ("package", "other"), [("monitor_server", "monitor_agent"), ("monitor_agent", "monitor_server")]
)
def test_hub_and_agent_never_load_each_other(package: str, other: str) -> None:
    """Importing every module of one program loads nothing of the other (`make run` included)."""
    loaded = _loaded_after_importing(_modules(package))
    assert package in loaded
    assert other not in loaded
