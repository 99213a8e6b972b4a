"""The request bodies of the alert endpoints, checked before anything is stored (422 otherwise)."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from protocol.frames import DEVICE_ID_PATTERN

MAX_FOR = 30 * 86400.0  # a month: longer waits are a typo
_LABEL = r"^[A-Za-z0-9][A-Za-z0-9._:@/ -]{0,127}$"
Label = Annotated[str, StringConstraints(pattern=_LABEL)]
DeviceName = Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]
Number = Annotated[float, Field(allow_inf_nan=False, ge=-1e15, le=1e15, strict=True)]
Op = Literal[">", ">=", "<", "<=", "==", "!="]
Kind = Literal["threshold", "offline", "status"]
Severity = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
Metric = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
# A value that fits the text column on both stores: no control characters (PostgreSQL refuses NUL).
Text = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]*$", max_length=500)]
# A notifier named by its id or its name.
NotifierRef = Annotated[int, Field(strict=True, ge=1, le=2**63 - 1)] | Label


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Selector(_Body):
    """Which devices a rule covers: those listed and those with a listed tag; all when both are empty."""

    tags: list[Label] = Field(default_factory=list, max_length=100)
    devices: list[DeviceName] = Field(default_factory=list, max_length=1000)


class RuleCreate(_Body):
    """``POST /alert-rules``. Threshold rules need ``metric``, ``op`` and ``value``; ``clear_value``
    (hysteresis) must not be on the firing side of ``value``. Offline and status rules take none."""

    name: Label
    kind: Kind
    metric: Metric | None = None
    op: Op | None = None
    value: Number | None = None
    clear_value: Number | None = None
    for_seconds: float = Field(0.0, alias="for", ge=0, le=MAX_FOR, allow_inf_nan=False, strict=True)
    severity: Severity = "warning"
    selector: Selector = Field(default_factory=Selector)
    # The notifiers it goes to, by id or name (the hub stores ids); none: every notifier.
    notifiers: list[NotifierRef] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _consistent(self) -> RuleCreate:
        if self.kind == "threshold":
            if self.metric is None or self.op is None or self.value is None:
                raise ValueError("a threshold rule needs metric, op and value")
            clear = self.clear_value
            if clear is not None and (
                (self.op in (">", ">=") and clear > self.value)
                or (self.op in ("<", "<=") and clear < self.value)
            ):
                raise ValueError(f"clear_value {clear:g} is on the firing side of {self.op} {self.value:g}")
        elif (self.metric, self.op, self.value, self.clear_value) != (None, None, None, None):
            raise ValueError(f"a {self.kind} rule takes no metric, op, value or clear_value")
        return self


class RuleUpdate(_Body):
    """``PATCH /alert-rules/{id}``: the fields given replace the rule's (null clears an optional one)."""

    name: Label | None = None
    kind: Kind | None = None
    metric: Metric | None = None
    op: Op | None = None
    value: Number | None = None
    clear_value: Number | None = None
    for_seconds: float | None = Field(None, alias="for", ge=0, le=MAX_FOR, allow_inf_nan=False, strict=True)
    severity: Severity | None = None
    selector: Selector | None = None
    notifiers: list[NotifierRef] | None = Field(None, max_length=50)


class NotifierCreate(_Body):
    """``POST /notifiers``: a webhook (Alertmanager format, version 4) to an http(s) URL, or an
    apprise URL (``ntfy://...``, ``slack://...``, ``mailto://...``: any service apprise knows)."""

    name: Label
    kind: Literal["webhook", "apprise"]
    url: Annotated[
        str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9+.-]*://[^\x00-\x20\x7f]+$", max_length=2048)
    ]
    headers: dict[
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")],
        Annotated[str, StringConstraints(pattern=r"^[\x20-\x7e]{0,1024}$")],
    ] = Field(default_factory=dict, max_length=20)

    @model_validator(mode="after")
    def _url_fits_kind(self) -> NotifierCreate:
        url = self.url
        if self.kind == "apprise":
            from monitor_server.alerts.apprise_notify import valid_url

            if self.headers:
                raise ValueError("an apprise notifier takes no headers (they go in its URL)")
            if not valid_url(url):
                raise ValueError("apprise does not know this URL (see its list of services)")
            return self
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises for a port that is not a number or out of range
        except ValueError as exc:
            raise ValueError(f"invalid url: {exc}") from None
        if parts.scheme.lower() not in ("http", "https"):
            raise ValueError("a webhook url is http:// or https://")
        if not parts.hostname:
            raise ValueError("the url needs a host")
        return self


class Matchers(_Body):
    """Alerts a silence holds: every matcher given must be equal (at least one)."""

    device: DeviceName | None = None
    rule: Label | None = None
    severity: Severity | None = None


class SilenceCreate(_Body):
    """``POST /silences``: notifications of matching alerts wait until ``ends_at`` (epoch seconds or
    ISO-8601); those still owed then are sent."""

    matchers: Matchers
    ends_at: float | str
    comment: Text = ""

    @model_validator(mode="after")
    def _some_matcher(self) -> SilenceCreate:
        if not self.matchers.model_dump(exclude_none=True):
            raise ValueError("give at least one matcher (device, rule or severity)")
        return self
