"""What running a command produced: success, a message, and optional extra fields (exit code...)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CommandResult:
    success: bool
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"success": self.success, "message": self.message, "extra": self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CommandResult:
        return cls(bool(data["success"]), str(data.get("message", "")), dict(data.get("extra", {})))


def failure(message: str, **extra: Any) -> CommandResult:
    return CommandResult(False, message, extra)
