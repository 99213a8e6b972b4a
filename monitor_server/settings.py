"""Hub settings: built once from ``MONITOR_*`` environment variables and CLI flags, then passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from monitor_server.store import is_postgres_url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MONITOR_", populate_by_name=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # A SQLite file, or a postgresql:// URL (several hubs on one database, DESIGN §13).
    db: Path | str = Path("data/monitor.db")
    data_dir: Path | None = None  # where the generated token lives; defaults to the db's folder
    # The original server read EXPECTED_TOKEN; it still works.
    token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MONITOR_TOKEN", "EXPECTED_TOKEN", "token")
    )

    # 300 s: an agent's pings (every ping_interval) already prove it alive to the keepalive, which
    # drops a silent peer within ping_interval + ping_timeout (10 s). A heartbeat frame is what an
    # agent with nothing else to send says to show its own code still runs (a peer whose pings go
    # through but that sends no frame is closed after idle_timeout, about 10 minutes). At 20 s,
    # 10,000 idle agents' heartbeats cost the hub 5 % of a core (bench/notes.md, capacity).
    heartbeat_interval: float = Field(300.0, gt=0, description="agents send a frame at least this often")
    ping_interval: float = Field(5.0, gt=0)
    ping_timeout: float = Field(5.0, gt=0)
    hello_timeout: float = Field(5.0, gt=0)
    duplicate_retry_after: float = Field(300.0, gt=0, description="seconds a refused duplicate agent waits")
    http_offline_after: float = Field(30.0, gt=0, description="HTTP-only devices go offline after this")
    presence_check_interval: float = Field(1.0, gt=0)
    retention_days: float = Field(7.0, gt=0)
    retention_check_interval: float = Field(3600.0, gt=0)
    unseen_command_ttl: float = Field(
        86400.0,
        ge=0,
        le=100 * 365 * 86400.0,
        allow_inf_nan=False,
        description="commands for a device never seen expire after this many seconds (0 = never)",
    )
    expiry_check_interval: float = Field(5.0, gt=0, description="how often expired commands are marked")
    # Several hubs on PostgreSQL (DESIGN §13): each heartbeats this often; a hub silent for longer
    # than hub_lost_after has its devices marked offline (hub_lost) by a survivor: with the
    # defaults, within about 7 s of its death (the contract is 10 s).
    hub_heartbeat: float = Field(1.0, gt=0, description="seconds between a hub's heartbeats (PostgreSQL)")
    hub_lost_after: float = Field(6.0, gt=0, description="a hub silent this long is taken for dead")
    # Alerts (DESIGN §11): alerts changing together wait this long to go out in one notification
    # per notifier; an alert still firing is notified again every repeat interval (0 = never).
    alert_group_wait: float = Field(
        2.0, ge=0, le=3600, allow_inf_nan=False, description="seconds alerts wait to be grouped"
    )
    alert_repeat_interval: float = Field(
        4 * 3600.0,
        ge=0,
        le=365 * 86400.0,
        allow_inf_nan=False,
        description="seconds before an alert still firing is notified again (0 = never)",
    )

    max_frame_bytes: int = Field(1 << 20, ge=1024)
    outbox_size: int = Field(1024, ge=1, description="frames queued per socket before it is dropped")
    outbox_bytes: int = Field(16 << 20, ge=1024, description="bytes queued per socket before it is dropped")
    ui_queue_size: int = Field(2048, ge=1)
    batch_max_rows: int = Field(2000, ge=1)
    ingest_wait: float = Field(10.0, gt=0, description="seconds POST /ingest waits for its commit before 503")

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    # Proxies whose X-Forwarded-Proto/-For are believed (comma-separated IPs or "*").
    forwarded_allow_ips: str = "127.0.0.1"
    tls_cert: Path | None = None
    tls_key: Path | None = None

    session_lifetime: float = Field(12 * 3600.0, gt=0, description="seconds a dashboard login lasts")
    login_code_ttl: float = Field(600.0, gt=0, description="seconds a one-time login link stays valid")
    # Origins allowed to open /ws/ui and to send cookie-authenticated writes; empty = the hub's own.
    # NoDecode: MONITOR_UI_ORIGINS is a comma-separated list, friendlier in a shell than JSON.
    ui_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    ui_send_timeout: float = Field(10.0, gt=0, description="a browser not reading for this long is dropped")
    # Failed authentication per client address (every way in): this many within the window,
    # then a short lockout (429 + Retry-After). The login form, typed by people, allows fewer.
    auth_max_failures: int = Field(20, ge=1, description="wrong tokens per address per window (API, sockets)")
    login_max_failures: int = Field(10, ge=1, description="wrong tokens per address per window (login form)")
    auth_failure_window: float = Field(60.0, gt=0, description="seconds over which failures are counted")
    auth_lockout: float = Field(30.0, gt=0, description="seconds an address is refused once over the limit")
    # Failed logins per user name (any address): a short lockout, so guessing is slowed without
    # letting an attacker keep the right user out for long; addresses that logged in as that name
    # before are not subject to it.
    login_name_max_failures: int = Field(5, ge=1, description="wrong passwords per user name per window")
    login_name_lockout: float = Field(15.0, gt=0, description="seconds a user name is refused once over")

    # Identity (DESIGN §10). The shared fleet token (MONITOR_TOKEN) is accepted as an admin
    # principal unless this is "off".
    legacy_token: Literal["on", "off"] = "on"  # noqa: S105 - a switch, not a secret
    auth_cache_ttl: float = Field(
        5.0, ge=0, description="seconds a looked-up credential is trusted before the store is asked again"
    )

    @field_validator("db", mode="before")
    @classmethod
    def _db_path_or_url(cls, value: object) -> object:
        """A URL stays text (a Path would fold its ``//``); anything else is a file path."""
        if isinstance(value, str) and not is_postgres_url(value):
            return Path(value)
        return value

    @field_validator("ui_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().rstrip("/") for part in value.split(",") if part.strip()]
        return value

    @property
    def legacy_token_on(self) -> bool:
        return self.legacy_token == "on"  # noqa: S105 - a switch, not a secret

    @property
    def token_dir(self) -> Path:
        """``data_dir``, else the SQLite file's folder (``data/`` for a server database)."""
        if self.data_dir is not None:
            return self.data_dir
        return Path("data") if isinstance(self.db, str) else self.db.parent

    @property
    def idle_timeout(self) -> float:
        """An agent that sends no frame for this long is declared offline (reason ``timeout``)."""
        return self.heartbeat_interval * 2 + self.ping_timeout
