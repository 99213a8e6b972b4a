"""Render ``docs/benchmarks.md`` from ``bench/results/full/*.json`` and the hand-written notes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

NOTES = Path(__file__).resolve().parent / "notes.md"
ORDER = ("push", "capacity", "ingest", "presence", "storm", "footprint", "decode", "revoke", "identity")


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(rows: list[list[Any]], head: list[str]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return [*out, ""]


def _targets(result: dict[str, Any]) -> list[str]:
    rows = [
        [label, t["target"], t["achieved"], "met" if t["met"] else "**not met**"]
        for label, t in result.get("targets", {}).items()
    ]
    return _table(rows, ["figure", "target", "achieved", ""])


def _push(r: dict[str, Any]) -> list[str]:
    rows = []
    for size in r["sizes"]:
        fr, ar = size["push_from_request"], size["push_after_return"]
        rows.append(
            [
                size["agents"],
                f"{fr['p50_ms']} / {fr['p99_ms']} / {fr['max_ms']}",
                f"{ar['p50_ms']} / {ar['p99_ms']} / {ar['max_ms']}",
                f"{size['poll_1s']['p50_ms']} / {size['poll_1s']['p99_ms']} / {size['poll_1s']['max_ms']}",
                f"{size['poll_10s']['p50_ms']} / {size['poll_10s']['p99_ms']} / {size['poll_10s']['max_ms']}",
                f"{size['ratio_vs_poll_1s_p50']}x / {size['ratio_vs_poll_1s_p99']}x",
                f"{sum(w['arrived_before_return'] for w in size['runs'])} of "
                f"{sum(w['n'] for w in size['runs'])}",
                size["online_at_end"],
            ]
        )
    return _table(
        rows,
        [
            "agents",
            "**push from REST request sent**, ms p50/p99/max",
            "push after REST return (secondary), ms",
            "poll every 1 s, ms",
            "poll every 10 s, ms",
            "1 s poll / push (p50, p99)",
            "frames before the REST response",
            "online at end",
        ],
    )


def _capacity(r: dict[str, Any]) -> list[str]:
    rows = [
        [s["agents"], s["seconds_to_connect_step"], s["hub_sessions"], s["hub_rss_mib"], s["hub_fds"]]
        for s in r["steps"]
    ]
    lines = _table(rows, ["agents", "s to connect the step", "hub sessions", "hub RSS MiB", "hub fds"])
    lines.append(
        f"Hub RSS with no agent: {r['hub_rss_empty_mib']} MiB. Idle hub CPU with {r['connected']:,} "
        f"agents (heartbeat every 5 s and the agent's ping every 5 s; the hub pings only an agent silent "
        f"for 6 s): **{r['idle_cpu_percent']} %** of one "
        f"core (median of {len(r['runs'])} windows of {r['window_seconds']:g} s); reconnects during "
        f"the windows: {r['reconnects_during_idle']}.{' Failure: ' + r['failure'] if r['failure'] else ''}"
    )
    return [*lines, ""]


def _ingest(r: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if "live_runs" in r:
        rows = [
            [
                f"live `metrics`, 1 sample/frame, {w['agents']:,} agents"
                if w["samples_per_frame"] == 1
                else f"`metrics_batch` of {w['samples_per_frame']}, {w['agents']} agents",
                i + 1,
                w["samples_per_second"],
                w["hub_cpu_percent"],
                w["hub_us_per_sample"],
                w["load_generator_cpu_percent"],
            ]
            for runs in (r["live_runs"], r["light_batched_runs"])
            for i, w in enumerate(runs)
        ]
        lines += _table(
            rows,
            [
                "load (`bench/live_load.py`)",
                "run",
                "samples/s stored",
                "hub CPU %",
                "hub us per sample",
                "load generator CPU %",
            ],
        )
        lines.append(
            f"Headline: **{r['live_samples_per_second']:,.0f} samples/s** stored from "
            f"{r['live_agents']:,} agents each sending one sample per frame (bound by: "
            f"{r['live_bound_by']}), **{r['live_hub_us_per_sample']} us of hub CPU per sample** against "
            f"{r['light_batched_hub_us_per_sample']} us in batches of 500 "
            f"({r['light_batched_samples_per_second']:,.0f} samples/s, bound by: "
            f"{r['light_batched_bound_by']}) in the same hub and run: **{r['live_over_batched_cost']}x**. "
            f"Batches of 500 reach {r['light_batched_ratio']:.0%} of raw `executemany` (16 devices); raw "
            f"`executemany` of rows round-robin over {r['live_agents']:,} devices (the live load's index "
            f"order): {r.get('raw_many_devices_rows_per_second', float('nan')):,.0f} rows/s."
        )
        lines.append("")
    rest_new = r.get("rest_first_seen_runs") or []
    rows = [
        [
            i + 1,
            w["samples_per_second"],
            w["hub_cpu_percent"],
            w.get("load_generator_cpu_percent", ""),
            raw["rows_per_second"],
            rest["requests_per_second"],
            rest_new[i]["requests_per_second"] if i < len(rest_new) else "",
        ]
        for i, (w, raw, rest) in enumerate(zip(r["ws_runs"], r["raw_runs"], r["rest_runs"], strict=False))
    ]
    lines += _table(
        rows,
        [
            "run",
            "agent transport replaying, samples/s",
            "hub CPU %",
            "load generator CPU %",
            "raw executemany rows/s",
            "REST /ingest req/s, 32 fixed devices",
            "REST /ingest req/s, a new device per request",
        ],
    )
    first_seen = (
        f", {r['rest_first_seen_requests_per_second']:,.0f} with a first-seen device per request"
        if "rest_first_seen_requests_per_second" in r
        else ""
    )
    lines.append(
        f"Medians: {r['ws_samples_per_second']:,.0f} samples/s through the agent's own transport "
        f"({r['agents']} agents replaying backlogs in batches of 500, {r['window_seconds']:g} s windows; "
        f"bound by: {r.get('ws_bound_by', '?')}), raw "
        f"executemany {r['raw_rows_per_second']:,.0f} rows/s, ratio {r['ratio']:.0%}; REST "
        f"`/ingest` {r['rest_requests_per_second']:,.0f} requests/s (32 keep-alive clients, fixed "
        f"devices){first_seen}."
    )
    return [*lines, ""]


def _presence(r: dict[str, Any]) -> list[str]:
    c = r["clean_close"]
    return [
        f"Subscriber: {r['subscriber']}. Clean close -> offline event: p50 {c['p50_ms']} ms, "
        f"p99 {c['p99_ms']} ms, max {c['max_ms']} ms (median of {len(r['clean_close_runs'])} runs of "
        f"{r['closes_per_run']} closes). SIGSTOPped agent -> offline with default timings"
        + (
            f", frozen at a random phase (0-10 s after it came online) in {len(r['sigstop_seconds'])} "
            f"agents: min **{r['sigstop_min_seconds']} s**, median **{r['sigstop_median_seconds']} s**, "
            f"max **{r['sigstop_max_seconds']} s** (each: "
            if "sigstop_min_seconds" in r
            else ": ("
        )
        + f"{', '.join(str(s) for s in sorted(r['sigstop_seconds']))} s).",
        "",
    ]


def _storm(r: dict[str, Any]) -> list[str]:
    rows = []
    for mode in (r["with_jitter"], r["without_jitter"]):
        for i, run in enumerate(mode["runs"]):
            rows.append(
                [
                    "full jitter" if mode["jitter"] else "no jitter",
                    i + 1,
                    run["seconds_from_kill"],
                    run["hub_restart_seconds"],
                    run["seconds_from_hub_ready"],
                    run["hub_sessions_after"],
                    run["hub_max_fds"],
                    mode["fd_exhaustion"],
                ]
            )
    return _table(
        rows,
        [
            "backoff",
            "run",
            "s from kill to all online",
            "hub restart s",
            "s from hub ready",
            "hub sessions after",
            "hub max fds",
            "fd exhaustion",
        ],
    )


def _footprint(r: dict[str, Any]) -> list[str]:
    rows = [
        [i + 1, w["seconds"], w["cpu_percent_of_one_core"], w["rss_mb_mean"], w["rss_mb_max"]]
        for i, w in enumerate(r["runs"])
    ]
    return _table(rows, ["run", "seconds", "CPU % of one core", "VmRSS MiB mean", "VmRSS MiB max"])


def _decode(r: dict[str, Any]) -> list[str]:
    labels = {
        "metrics": "`metrics`, one agent sample (every collector field)",
        "metrics_named_only": "`metrics`, the same without its two unnamed fields",
        "metrics_batch": "`metrics_batch` of 500 such samples",
    }
    rows = [
        [
            label,
            r[key]["frame_bytes"],
            r[key]["frames_per_second"],
            r[key]["samples_per_second"],
            r[key]["us_per_sample"],
            ", ".join(_fmt(f) for f in r[key]["runs_frames_per_second"]),
        ]
        for key, label in labels.items()
        if key in r
    ]
    lines = _table(rows, ["frame", "bytes", "frames/s", "samples/s", "us per sample", "each run, frames/s"])
    lines.append(
        f"`protocol.codec.decode_agent_frame` ({r['frames_library']} frames), the hub's decode and "
        f"validation of every agent message, in one process on the load core, no socket; rates per "
        f"second of that process's CPU time (other processes on the core do not count); medians of "
        f"{r['runs']} passes over {r['metrics']['frames']:,} distinct frames (batches: "
        f"{r['metrics_batch']['frames']})."
    )
    lines += [
        "",
        'The before/after comparison with the pydantic frames is in "Before and after one frame definition',
        'and stored acknowledgements" below.',
    ]
    return [*lines, ""]


def _revoke(r: dict[str, Any]) -> list[str]:
    c = r["revoke_to_close"]
    return [
        f"{r['what']}: p50 {c['p50_ms']} ms, p99 {c['p99_ms']} ms, max {c['max_ms']} ms (median of "
        f"{len(r['runs'])} runs of {r['tries_per_run']} revocations, each of a freshly enrolled device).",
        "",
    ]


def _identity(r: dict[str, Any]) -> list[str]:
    rows = [
        [
            f"REST /ingest, {w['mode']}",
            w["run"],
            w["requests_per_second"],
            w["errors"],
            w["hub_cpu_percent"],
            w["load_generator_cpu_percent"],
        ]
        for w in r["ingest_runs"]
    ]
    rows += [
        [
            "POST /login",
            w["run"],
            w["requests_per_second"],
            w["errors"],
            w["hub_cpu_percent"],
            w["load_generator_cpu_percent"],
        ]
        for w in r["login_runs"]
    ]
    rows += [
        [
            f"GET /devices, {w['mode']}",
            w["run"],
            w["requests_per_second"],
            w["errors"],
            w["hub_cpu_percent"],
            w["load_generator_cpu_percent"],
        ]
        for w in r["devices_runs"]
    ]
    lines = _table(rows, ["figure", "run", "req/s", "errors", "hub CPU %", "load generator CPU %"])
    ingest, login, alone, cold, get = (
        r["ingest"],
        r["login"],
        r["login_alone"],
        r["cold_lookup"],
        r["devices"],
    )
    legacy, credential = ingest["legacy token"], ingest["device credential"]
    cold_ms = {k: f"{cold[k]['p50_ms']} / {cold[k]['p99_ms']} ms" for k in ("cold", "cached", "legacy")}
    lines.append(
        f"Medians: REST `/ingest` ({r['clients']} keep-alive clients, one device each, "
        f"{r['window_seconds']:g} s windows, interleaved) **{legacy['requests_per_second']:,.0f} req/s** "
        f"with the legacy token, **{credential['requests_per_second']:,.0f} req/s** with each device's "
        f"credential (median of the runs' ratios **{ingest['ratio']:.1%}**). Latency p50 / p99 of one "
        f"request on an open connection ({cold['devices']} devices): a credential's first (cold "
        f"lookup) {cold_ms['cold']}, the same again (cached) {cold_ms['cached']}, the legacy token "
        f"{cold_ms['legacy']}. "
        f"`POST /login` ({r['login_clients']} clients, {r['login_window_seconds']:g} s windows): "
        f"**{login['requests_per_second']:g} logins/s**, latency p50 {login['p50_ms']} ms, p99 "
        f"{login['p99_ms']} ms; one client alone p50 {alone['p50_ms']} ms. `GET /devices` "
        f"({r['devices_listed']} devices, {r['clients']} clients): "
        f"{get['session cookie']['requests_per_second']:,.0f} req/s with a session cookie, "
        f"{get['legacy token']['requests_per_second']:,.0f} with the legacy token (median of the runs' "
        f"ratios **{get['ratio']:.1%}**). Each run's two windows are back to back, their order alternating."
    )
    return [*lines, ""]


RENDER = {
    "push": _push,
    "capacity": _capacity,
    "ingest": _ingest,
    "presence": _presence,
    "storm": _storm,
    "footprint": _footprint,
    "decode": _decode,
    "revoke": _revoke,
    "identity": _identity,
}
TITLES = {
    "push": "1. Push latency",
    "capacity": "2. Capacity",
    "ingest": "3. Ingest",
    "presence": "4. Presence",
    "storm": "5. Reconnect storm",
    "footprint": "6. Agent footprint",
    "decode": "7. Frame decoding",
    "revoke": "8. Revocation",
    "identity": "9. Identity: per-device credentials, logins, sessions",
}


def write_report(results: Path, target: Path) -> None:
    loaded = {p.stem: json.loads(p.read_text()) for p in results.glob("*.json")}
    if not loaded:
        return
    meta = next(iter(loaded.values()))["meta"]
    m = meta["machine"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`bench/run.py`); the analysis after the tables lives in"
        " `bench/notes.md`.",
        "",
        f"- Machine: {m['cpu']}, {m['logical_cores']} logical cores, {m['ram_gib']} GiB RAM, Linux "
        f"{m['kernel']}, Python {m['python']}; load average at start {m['load_average_at_start']}.",
        f"- Hub: a real `monitor-server` process pinned to core 0 (`taskset -c 0`); load generator "
        f"(`python -m bench.run`, virtual agents on the agent's own `Agent` + `WsTransport` code) pinned to "
        f"core 1; open-files limit {meta['open_files_limit']}; loopback only.",
        f"- Figures are medians of {meta['runs']} runs unless a table shows every run; each baseline is "
        f"measured in the same run as the figure it is compared with.",
        "",
    ]
    for name in ORDER:
        if name not in loaded:
            continue
        r = loaded[name]
        lines += [
            f"## {TITLES[name]}",
            "",
            f"Run {r['meta']['date']} with `{r['meta']['command']}` ({r.get('seconds', '?')} s).",
            "",
        ]
        lines += (_targets(r) if r.get("targets") else []) + RENDER[name](r)
    if NOTES.exists():
        lines += [NOTES.read_text().rstrip(), ""]
    target.write_text("\n".join(lines))
