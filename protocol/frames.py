"""Pydantic models of every WebSocket frame of protocol version 1 (docs/protocol.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from protocol.timestamps import check_timestamp

PROTOCOL_VERSION = 1

DeviceId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Percent = Finite
Timestamp = Annotated[float | str, AfterValidator(check_timestamp)]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SampleFields(BaseModel):
    """One metrics sample: the seed's flat fields plus the richer optional ones; extras are kept."""

    model_config = ConfigDict(extra="allow")

    ts: Timestamp | None = None
    hostname: str | None = None
    cpu: Percent | None = None
    ram: Percent | None = None
    disk: Percent | None = None
    uptime_sec: int | None = None
    agent_version: str | None = None
    status: Literal["ok", "error"] | None = None
    last_error: str | None = None
    load_1: Finite | None = None
    load_5: Finite | None = None
    load_15: Finite | None = None
    mem_used: int | None = None
    mem_total: int | None = None
    swap_used: int | None = None
    swap_total: int | None = None
    disk_used: int | None = None
    disk_total: int | None = None
    disk_read_bps: Finite | None = None
    disk_write_bps: Finite | None = None
    net_rx_bps: Finite | None = None
    net_tx_bps: Finite | None = None
    procs: int | None = None
    temp_max: Finite | None = None


# Agent -> hub


class Hello(_Frame):
    type: Literal["hello"] = "hello"
    protocol: int
    device_id: DeviceId
    agent_version: str = ""
    hostname: str = ""
    platform: str = ""
    capabilities: list[str] = Field(default_factory=list)


class Metrics(SampleFields):
    type: Literal["metrics"] = "metrics"


class MetricsBatch(_Frame):
    """Many samples at once: how a reconnecting agent replays its spool."""

    type: Literal["metrics_batch"] = "metrics_batch"
    samples: list[SampleFields] = Field(max_length=1000)


class Ack(BaseModel):
    """The agent's result for a command; extra fields (output, exit code...) are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: Literal["ack"] = "ack"
    id: int
    success: bool
    message: str = ""


class Heartbeat(_Frame):
    """Sent when the agent has nothing else to say within the heartbeat interval."""

    type: Literal["heartbeat"] = "heartbeat"


AgentFrame = Hello | Metrics | MetricsBatch | Ack | Heartbeat

AGENT_FRAME_TYPES: dict[str, type[AgentFrame]] = {
    "hello": Hello,
    "metrics": Metrics,
    "metrics_batch": MetricsBatch,
    "ack": Ack,
    "heartbeat": Heartbeat,
}


# Hub -> agent


class Welcome(_Frame):
    type: Literal["welcome"] = "welcome"
    protocol: int = PROTOCOL_VERSION
    device_id: str
    heartbeat_interval: float
    ping_interval: float
    ping_timeout: float
    max_frame_bytes: int
    server_time: str


class CommandFrame(_Frame):
    type: Literal["command"] = "command"
    id: int
    command: str
    args: dict[str, Any] | None = None
    created_at: str


class Acked(_Frame):
    type: Literal["acked"] = "acked"
    id: int


class ErrorFrame(_Frame):
    type: Literal["error"] = "error"
    code: str
    message: str
    id: int | None = None  # the command an ``unknown_command`` error is about


HubFrame = Welcome | CommandFrame | Acked | ErrorFrame

HUB_FRAME_TYPES: dict[str, type[HubFrame]] = {
    "welcome": Welcome,
    "command": CommandFrame,
    "acked": Acked,
    "error": ErrorFrame,
}
