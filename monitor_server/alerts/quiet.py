"""A device's quick check, compiled: the next sample of a run at which some rule may move.

The evaluator runs it over every sample of a device some rule selects, so it is one generated
function per set of (field, op, value) a device's rules watch, shared by the devices with the same
set: it walks the run's samples itself (one call per run, not per sample) and reads each field
once, compared with the lowest ``>``/``>=`` value and the highest ``<``/``<=`` (and each
``==``/``!=`` value). A rule that is ok watches its condition; a firing one, the opposite of its
clear condition; a pending one, the opposite of its condition (the evaluator builds the pairs).
It returns the first sample where a reading holds, with a mask of the readings that hold (bit
``i``: ``readings[i]``; -1 for a value that is not a number: the evaluator's own path then
decides), or None once the run is through. A set bit means "look closer at that field", never "a
rule moves". Field names and values reach the generated code as arguments of its factory, never
as source text, so a rule's metric name cannot inject code, and devices whose checks differ only
in values share one compiled factory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from monitor_server.store import Sample

# Given the rest of a run: the next sample where a reading holds and the mask of those that do.
Scan = Callable[[Iterator[Sample]], tuple[Sample, int] | None]
# One field's rules: (field, read from a ``Sample`` attribute, status rule, ((op, value), ...)): the
# sample may move a rule when ``reading op value`` holds. For status rules the reading is 1.0 for a
# status "error" and 0.0 for any other (none: no reading), so ("==", 1.0) looks at an error and
# ("!=", 1.0) at any other status.
Reading = tuple[str, bool, bool, tuple[tuple[str, float], ...]]

_EXTREME: dict[str, Callable[[Iterable[float]], float]] = {">": min, ">=": min, "<": max, "<=": max}
_ATTRIBUTES = frozenset({"cpu", "ram", "disk", "uptime_sec", "status"})  # ``Sample``'s own fields
_CACHE_LIMIT = 4096
_cache: dict[tuple[Reading, ...], Scan] = {}
_factories: dict[str, Callable[..., Scan]] = {}  # by generated source: values are arguments


def always_quiet(samples: Iterator[Sample]) -> tuple[Sample, int] | None:
    return None


def compile_quiet(readings: tuple[Reading, ...]) -> Scan:
    """The quick check for these readings (cached: devices with the same rules share one)."""
    found = _cache.get(readings)
    if found is None:
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        if len(_factories) >= _CACHE_LIMIT:
            _factories.clear()
        found = _cache[readings] = _build(readings)
    return found


def _comparisons(pairs: tuple[tuple[str, float], ...]) -> list[tuple[str, float]]:
    """The few comparisons that stand for all: one per bound op (its extreme value), every ``==``
    and ``!=`` value; NaN values and infinities that no reading crosses are left out."""
    out: list[tuple[str, float]] = []
    for op, pick in _EXTREME.items():
        values = [v for o, v in pairs if o == op and not math.isnan(v)]
        if values and math.isfinite(bound := pick(values)):
            out.append((op, bound))
    out += [(op, v) for op, v in pairs if op in ("==", "!=")]
    return out


def _build(readings: tuple[Reading, ...]) -> Scan:
    lines: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"a{len(args) - 1}"

    for bit, (field, attribute, status, pairs) in enumerate(readings):
        if status:
            lines += [f"{test}: m |= {1 << bit}" for test in _status_tests({op for op, _ in pairs})]
            continue
        tests = " or ".join(f"v {op} {arg(value)}" for op, value in _comparisons(pairs))
        if not tests:
            continue
        if attribute and field not in _ATTRIBUTES:
            raise ValueError(f"not a sample attribute: {field!r}")
        source = f"sample.{field}" if attribute else f"extra.get({arg(field)})"
        lines += [f"v = {source}", f"if v is not None and ({tests}): m |= {1 << bit}"]
    if not lines:
        return always_quiet
    body = "\n".join(f"                {line}" for line in lines)
    params = ", ".join(f"a{n}" for n in range(len(args)))
    source = (
        f"def factory({params}):\n"
        "    def scan(samples):\n"
        "        for sample in samples:\n"
        "            m = 0\n"
        "            try:\n"
        "                extra = sample.extra\n"
        f"{body}\n"
        "            except TypeError:\n"  # a reading that is not a number: the evaluator's path decides
        "                return sample, -1\n"
        "            if m:\n"
        "                return sample, m\n"
        "        return None\n"
        "    return scan\n"
    )
    factory = _factories.get(source)
    if factory is None:
        namespace: dict[str, Any] = {}
        exec(compile(source, "<alert quick check>", "exec"), namespace)  # noqa: S102 - no user text in it
        factory = _factories[source] = namespace["factory"]
    scan: Scan = factory(*args)
    return scan


def _status_tests(ops: set[str]) -> list[str]:
    """A status rule ok looks at an error (``==``); an active one at any other status (``!=``)."""
    if {"==", "!="} <= ops:
        return ["if sample.status is not None"]
    if "!=" in ops:
        return ['if sample.status is not None and sample.status != "error"']
    return ['if sample.status == "error"']
