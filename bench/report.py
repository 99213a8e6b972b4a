"""Render ``docs/benchmarks.md`` from ``bench/results/full/*.json`` and the hand-written notes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.run import SCENARIOS

NOTES = Path(__file__).resolve().parent / "notes.md"
ORDER = SCENARIOS  # one list of scenarios: bench/run.py's


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


FLEETS = {
    "light": "light (`bench/push_fleet.py`: 100 commanded agents in a process, the rest in four)",
    "agents": "agent's own code (`Agent` + `WsTransport`, in `bench.run`)",
}


def _hist(buckets: dict[str, float]) -> tuple[int, str]:
    """(observations over 1 s, the smallest bucket bound holding 99 % of them) of a histogram."""
    total = buckets.get("+Inf", 0.0)
    over = int(total - buckets.get("1.0", total))
    p99 = next((b for b, n in buckets.items() if n >= 0.99 * total), "+Inf") if total else "-"
    return over, p99


def _push(r: dict[str, Any]) -> list[str]:
    rows = []
    for size in r["sizes"]:
        fr, ar = size["push_from_request"], size["push_after_return"]
        polled = size["poll_1s"].get("n", 1)
        bg = size.get("background")  # the light fleet's uncommanded processes
        rows.append(
            [
                size["agents"],
                FLEETS[size.get("fleet", "agents")],
                f"{fr['p50_ms']} / {fr['p99_ms']} / {fr['max_ms']}"
                + (
                    f" ({lost} not arrived in 30 s)"
                    if (lost := sum(w.get("not_arrived", 0) for w in size["runs"]))
                    else ""
                ),
                f"{size.get('hub_cpu_percent', 0):.0f} / {size.get('generator_cpu_percent', 0):.0f}"
                + (
                    f" (background {bg['generator_cpu_percent']:.0f})"
                    if (bg := size.get("background"))
                    else ""
                )
                if "hub_cpu_percent" in size
                else "not measured",
                f"{size['generator_late_p99_ms']} / {size['generator_late_max_ms']}"
                + (
                    f" (background {bg['generator_late_p99_ms']} / {bg['generator_late_max_ms']})"
                    if bg
                    else ""
                )
                if "generator_late_p99_ms" in size
                else "not measured",
                size.get("limited_by", ""),
                (
                    "{} of {} over 1 s / p99 <= {} s".format(
                        _hist(h["commit"])[0], int(h["commit"].get("+Inf", 0)), _hist(h["push"])[1]
                    )
                    if (h := size.get("hub_histograms"))
                    else "not measured"
                ),
                f"{ar['p50_ms']} / {ar['p99_ms']} / {ar['max_ms']}",
                f"{size['poll_1s']['p50_ms']} / {size['poll_1s']['p99_ms']} / {size['poll_1s']['max_ms']}"
                if polled
                else "not run",
                f"{size['poll_10s']['p50_ms']} / {size['poll_10s']['p99_ms']} / {size['poll_10s']['max_ms']}"
                if polled
                else "not run",
                f"{size['ratio_vs_poll_1s_p50']}x / {size['ratio_vs_poll_1s_p99']}x" if polled else "",
                f"{sum(w['arrived_before_return'] for w in size['runs'])} of "
                f"{sum(w['n'] for w in size['runs'])}",
                f"{size['online_at_end']:,}"
                + (f" ({size['reconnects']:,} reconnects)" if size.get("reconnects") else ""),
            ]
        )
    return _table(
        rows,
        [
            "agents",
            "fleet",
            "**push from REST request sent**, ms p50/p99/max",
            "CPU % hub / load generator",
            "generator loop late, ms p99/max",
            "limited by",
            "hub's histograms: store commits / push (enqueue -> written)",
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
    idle = r["idle"]
    lines.append(
        f"Hub RSS with no agent: {r['hub_rss_empty_mib']} MiB; per connection at {r['connected']:,} "
        f"agents: **{r['rss_per_connection_kib']} KiB**. Idle hub CPU with {idle.get('agents', 0):,} "
        f"agents (the agent's ping every 5 s, a heartbeat every 300 s, none in the windows; the hub "
        f"pings only an agent silent for 6 s): **{r['idle_cpu_percent']} %** of one core (median of "
        f"{len(idle.get('runs', []))} windows of {idle.get('window_seconds', 0):g} s; "
        f"{', '.join(str(w['idle_cpu_percent']) for w in idle.get('runs', []))}); reconnects during "
        f"the windows: {idle.get('reconnects', 'n/a')}.{' Failure: ' + r['failure'] if r['failure'] else ''}"
    )
    return [*lines, ""]


def _light_load(w: dict[str, Any], floor: bool) -> str:
    """What a window of ``bench/live_load.py`` sent, and to what."""
    if floor:
        return f"live `metrics` to `bench/live_floor.py` (the stack alone), {w['agents']:,} agents"
    if w["samples_per_frame"] == 1:
        return f"live `metrics`, 1 sample/frame, {w['agents']:,} agents"
    return f"`metrics_batch` of {w['samples_per_frame']}, {w['agents']} agents"


def _ingest(r: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if "live_runs" in r:
        loads = ((r["live_runs"], False), (r["light_batched_runs"], False), (r.get("floor_runs") or [], True))
        rows = [
            [
                _light_load(w, floor),
                i + 1,
                w["samples_per_second"],
                w["hub_cpu_percent"],
                w["hub_us_per_sample"],
                w["load_generator_cpu_percent"],
            ]
            for runs, floor in loads
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
        if r.get("light_batched_roll_up_us_per_sample"):
            lines[-1] += (
                f" The hub's roll-up of the batched windows' samples (its next pass, after each window): "
                f"**{r['light_batched_roll_up_us_per_sample']} us of hub CPU per sample** more; at the "
                f"window's rate per CPU, the batches' share of raw with it: "
                f"{r['light_batched_ratio_with_roll_up']:.0%}."
            )
        if r.get("floor_runs"):
            lines.append("")
            lines.append(
                f"The floor: the same live load against a server with the hub's stack and none of its "
                f"work (uvicorn, Starlette, `msgspec` decoding, `stored` every 0.1 s; "
                f"`bench/live_floor.py`), on the hub's core in the same run: "
                f"{r['floor_frames_per_second']:,.0f} frames/s (bound by: {r['floor_bound_by']}), "
                f"**{r['floor_us_per_frame']} us of CPU per frame**, {r['floor_over_batched_cost']}x the "
                f"hub's cost per sample in batches of 500."
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
            _first_seen_load(rest_new[i]) if i < len(rest_new) else "",
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
            "its window: devices held at start / HTTP timeouts stored",
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


def _first_seen_load(window: dict[str, Any]) -> str:
    if "devices_held_at_start" not in window:
        return ""
    return f"{window['devices_held_at_start']:,} / {window['http_timeouts_stored']:,}"


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


def _ms3(d: dict[str, Any]) -> str:
    return f"{d['p50_ms']} / {d['p99_ms']} / {d['max_ms']}"


def _pair(values: list[Any]) -> str:
    return " / ".join(_fmt(v) for v in values)


def _hub_log(counts: dict[str, list[int]] | None) -> str:
    """What the hubs' logs said that a benchmark should not cause (per hub, A / B)."""
    if not counts:
        return ""
    names = {
        "taken_for_dead": "taken for dead while alive",
        "hub_lost_takeovers": "takeovers (hub_lost)",
        "welcome_after_close": "`welcome in state closed` tracebacks",
        "errors": "ERROR lines",
    }
    return (
        " Hub logs (A / B): "
        + ", ".join(f"{names[k]} {_pair(v)}" for k, v in counts.items() if k in names)
        + "."
    )


CLUSTER_INGEST = {
    "pg_batched": "hub on PostgreSQL, `metrics_batch` of 500 from 16 connections",
    "sqlite_batched": "hub on SQLite, `metrics_batch` of 500 from 16 connections",
    "pg_live": "hub on PostgreSQL, live `metrics` (1 sample/frame)",
    "sqlite_live": "hub on SQLite, live `metrics` (1 sample/frame)",
    "raw_copy": "raw `COPY` (asyncpg `copy_records_to_table`), batches of 2,000",
    "raw_executemany": "raw SQLite `executemany` (`bench/raw_sqlite.py`), batches of 2,000",
}


def _cluster(r: dict[str, Any]) -> list[str]:
    push, ing, take, cap = r["push"], r["ingest"], r["takeover"], r["capacity"]
    lines = [
        f"### Cross-hub push ({push['agents']:,} agents, {_pair(push['agents_per_hub'])} per hub, "
        f"{push['rate_per_second']:g} commands/s alternating between the two kinds, "
        f"{len(push['runs'])} windows of {push['window_seconds']:g} s; medians of the windows)",
        "",
    ]
    rows: list[list[Any]] = []
    for mode, label in (
        ("cross", "posted to the hub the agent is NOT on"),
        ("same", "posted to the agent's hub"),
    ):
        rows.append(
            [
                label,
                _ms3(push[f"{mode}_after_return"]),
                _ms3(push[f"{mode}_from_request"]),
                f"{sum(w[f'{mode}_arrived_before_return'] for w in push['runs'])} of "
                f"{sum(w[f'{mode}_from_request_n'] for w in push['runs'])}",
            ]
        )
    lines += _table(
        rows,
        [
            "command",
            "REST return -> frame, ms p50/p99/max",
            "request sent -> frame, ms",
            "frames before the response",
        ],
    )
    lines.append(
        "Hub CPU % (A / B) in each window: "
        + "; ".join(_pair(w["hub_cpu_percent"]) for w in push["runs"])
        + f". Online at the end: {push['online_at_end']:,}."
        + _hub_log(push.get("hub_log"))
    )
    lines += ["", f"### Ingest: PostgreSQL vs SQLite vs raw COPY ({ing['window_seconds']:g} s windows)", ""]
    rows = []
    for name, label in CLUSTER_INGEST.items():
        runs = ing["runs"].get(name)
        if not runs:
            continue
        raw = name.startswith("raw")
        key = "rows_per_second" if raw else "samples_per_second"
        rows.append(
            [
                label,
                ", ".join(_fmt(w[key]) for w in runs),
                ing["rate"][name],
                "" if raw else ing["hub_cpu_percent"][name],
                "" if raw else ing["hub_us_per_sample"][name],
                "" if raw else ", ".join(_fmt(w["load_generator_cpu_percent"]) for w in runs),
            ]
        )
    lines += _table(
        rows,
        ["load", "each run, rows/s", "median", "hub CPU %", "hub us per sample", "load generator CPU %"],
    )
    shares = {k: v for k, v in ing["shares"].items() if v is not None}
    names = {
        "pg_batched_of_raw_copy": "PostgreSQL hub / raw COPY",
        "sqlite_batched_of_raw_executemany": "SQLite hub / raw executemany",
        "pg_batched_of_sqlite_batched": "PostgreSQL hub / SQLite hub (batches)",
        "pg_live_of_sqlite_live": "PostgreSQL hub / SQLite hub (live frames)",
        "raw_copy_of_raw_executemany": "raw COPY / raw executemany",
    }
    lines.append(
        "Shares (medians): " + "; ".join(f"{names[k]} **{v:.0%}**" for k, v in shares.items()) + ". "
        f"Live frames from {ing['live_agents']:,} connections; raw baselines {ing['raw_rows']:,} rows "
        "over 16 devices into a fresh schema / file with the hub's own table and indexes; each hub window "
        "a fresh hub and database; the order rotates from run to run."
    )
    lines += [
        "",
        f"### Takeover after `kill -9` (heartbeat {take['hub_heartbeat_s']:g} s, lost after "
        f"{take['hub_lost_after_s']:g} s; seconds from the kill, as hub B serves them)",
        "",
    ]
    rows = [
        [
            i + 1,
            f"{w['agents_failing_over']:,} + {w['agents_with_only_a']}",
            f"{w['offline_first_s']} / {w['offline_all_s']}",
            f"{w.get('hello_median_s', '?')} / {w.get('hello_all_s', '?')}",
            f"{w['back_median_s']} / {w['back_all_s']}",
            w["agents_connected_again_s"],
            w["failing_over_seen_offline_on_b"],
            ", ".join(w["hub_lost_reasons"]),
        ]
        for i, w in enumerate(take["runs"])
    ]
    lines += _table(
        rows,
        [
            "run",
            "agents: both URLs + only A's",
            "only-A devices offline, first / all",
            "their hellos on B (presence_since), median / all",
            "failing-over devices listed online via B, median / all",
            "agents connected again (agent side)",
            "failing-over devices B ever showed offline",
            "reason",
        ],
    )
    lines.append(
        f"Medians: every device of the dead hub offline on B after **{take['offline_all_s']} s**; every "
        f"agent given both URLs listed online again through B after **{take['back_all_s']} s** (median "
        f"device {take['back_median_s']} s; their hellos reached B by {take.get('hello_all_s', '?')} s, "
        f"the listing waits for B's presence writes)."
        + "".join(f" Run {i + 1}:{_hub_log(w.get('hub_log'))}" for i, w in enumerate(take["runs"]))
    )
    lines += [
        "",
        f"### Capacity of two hubs (a sample every {cap['sample_interval_s']:g} s per agent, half on each "
        f"hub, both hubs on core 0, {cap['window_seconds']:g} s windows)",
        "",
    ]
    rows = [
        [
            s["agents"],
            s["seconds_to_connect_step"],
            _pair(s["hub_sessions"]),
            _pair(s["hub_cpu_percent"]),
            _pair(s["hub_rss_mib"]),
            s["postgres_cpu_percent"],
            s["load_generator_cpu_percent"],
            f"{s['samples_per_second']:,} / {s['expected_samples_per_second']:,}",
            s["reconnects"],
            s["all_online"],
        ]
        for s in cap["steps"]
    ]
    lines += _table(
        rows,
        [
            "agents",
            "s to connect the step",
            "sessions A / B",
            "hub CPU % A / B",
            "hub RSS MiB A / B",
            "PostgreSQL CPU %",
            "load generator CPU %",
            "samples/s stored / sent",
            "reconnects",
            "all online",
        ],
    )
    lines.append(
        f"Hub RSS with no agent: {_pair(cap['hub_rss_empty_mib'])} MiB. Held, all online: "
        f"**{cap['held_all_online']:,} agents**.{' Failure: ' + cap['failure'] if cap['failure'] else ''}"
        + _hub_log(cap.get("hub_log"))
    )
    return [*lines, ""]


def _alerts_ingest(r: dict[str, Any]) -> list[str]:
    loads = {
        "live": f"live `metrics`, 1 sample/frame, {r['live_agents']:,} agents",
        "batched": f"`metrics_batch` of 500, {r['batch_agents']} agents",
    }
    rows = []
    for load, label in loads.items():
        s = r["summary"][load]
        rows.append(
            [
                label,
                s["without_rules"]["samples_per_second"],
                s["with_rules"]["samples_per_second"],
                f"**{s['rate_ratio']:.1%}** ({', '.join(f'{x:.0%}' for x in s['rate_ratio_per_run'])})",
                f"{s['without_rules']['hub_us_per_sample']} / {s['with_rules']['hub_us_per_sample']}",
                f"**{s['cpu_per_sample_ratio']:.2f}x** "
                f"({', '.join(f'{x:.2f}' for x in s['cpu_per_sample_ratio_per_run'])})",
                f"{s['without_rules']['bound_by']}; {s['with_rules']['bound_by']}",
            ]
        )
        half = s.get("second_half")
        if half and load == "live":
            rows.append(
                [
                    f"... the window's second half only ({r['window_seconds'][load] / 2:g} s)",
                    half["samples_per_second"][0],
                    half["samples_per_second"][1],
                    f"{half['rate_ratio']:.1%}",
                    f"{half['hub_us_per_sample'][0]} / {half['hub_us_per_sample'][1]}",
                    f"{half['cpu_per_sample_ratio']:.2f}x",
                    "",
                ]
            )
    lines = _table(
        rows,
        [
            "load (`bench/live_load.py`)",
            "samples/s stored, no rules",
            "with 100 rules",
            "with / without (each pair of windows)",
            "hub us per sample, no rules / rules",
            "rules / no rules (each pair of windows)",
            "bound by (no rules; rules)",
        ],
    )
    rows = []
    for load, label in loads.items():
        windows = sorted(
            (w for key in ("without", "with") for w in r["runs"][load][key]), key=lambda w: w["order"]
        )
        for w in windows:
            alerts, sent = w.get("alerts_at_end"), w.get("notifications")
            halves = [w.get("first_half"), w.get("second_half")]
            rows.append(
                [
                    label,
                    w["order"],
                    w["rules"],
                    w["samples_per_second"],
                    " / ".join(_fmt(h["samples_per_second"]) for h in halves if h),
                    w["hub_cpu_percent"],
                    w["hub_us_per_sample"],
                    w["load_generator_cpu_percent"],
                    f"{w.get('seconds_to_connect', '')}"
                    + (f" ({w['agents_never_connected']} never)" if w.get("agents_never_connected") else ""),
                    f"{alerts['pending']:,} / {alerts['firing']:,}" if alerts else "",
                    f"{sent['firing']:,} / {sent['resolved']:,} in {sent['posts']}" if sent else "",
                    w.get("load_average", ""),
                ]
            )
    lines += _table(
        rows,
        [
            "load",
            "window",
            "rules",
            "samples/s stored",
            "first / second half",
            "hub CPU %",
            "hub us per sample",
            "load generator CPU %",
            "s to connect",
            "alerts pending / firing at the end",
            "notified firing / resolved (webhook posts)",
            "load average",
        ],
    )
    kinds = r["rule_kinds"]
    live_note = (
        f"all {r['devices']:,} devices connected and sending"
        if r["live_agents"] >= r["devices"]
        else f"{r['live_agents']:,} of the {r['devices']:,} devices connected and sending, the others known, "
        "offline and covered by the rules"
    )
    spans = r["window_seconds"]
    lines.append(
        f"{r['devices']:,} known devices, tagged (`group-0`..`group-9`, `site-0`..`site-3`); "
        f"{r['rules']} rules ({kinds['threshold']} threshold on cpu, ram, disk, load_1, net_rx_bps, "
        f"net_tx_bps, mem_used and uptime_sec, {kinds['status']} status, {kinds['offline']} offline; "
        f"{r['rules_by_tag']} by a tag, {r['rules_by_device_list']} by a list of devices, the others "
        f"cover every device) and a webhook notifier in the bench process. Live load: {live_note}; "
        f"batched load: {r['batch_agents']} of them, the others offline. Each window a fresh hub on a copy "
        f"of the same database, the load started {r.get('setup_seconds', 0):g} s after the hub was ready "
        "(rules or not, so the hub's 30 s roll-up passes start at the same point of both conditions' "
        f"schedules), {spans['live']:g} s (live) or {spans['batched']:g} s (batched) after a "
        f"{r['warmup_seconds']:g} s warm-up; no rules and rules alternate, their order swapped from run "
        "to run (batched: two pairs per run, the second in the opposite order). Ratios: of the "
        "medians (each pair of windows' in parentheses)."
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
    "cluster": _cluster,
    "alerts_ingest": _alerts_ingest,
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
    "cluster": "10. Several hubs on one PostgreSQL database",
    "alerts_ingest": "11. Alerts: the ingest cost of 100 rules over 10,000 devices",
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


def update_sections(results: Path, target: Path, names: list[str]) -> None:
    """Re-render only ``names`` in ``target`` (the other sections keep the runs they show) and the notes."""
    text = target.read_text()
    for name in names:
        r = json.loads((results / f"{name}.json").read_text())
        head = f"## {TITLES[name]}"
        body = [
            head,
            "",
            f"Run {r['meta']['date']} with `{r['meta']['command']}` ({r.get('seconds', '?')} s).",
            "",
            *(_targets(r) if r.get("targets") else []),
            *RENDER[name](r),
        ]
        start = text.index(head)
        end = text.index("\n## ", start + len(head)) + 1
        text = text[:start] + "\n".join(body) + "\n" + text[end:]
    if NOTES.exists():
        first = NOTES.read_text().split("\n", 1)[0]
        text = text[: text.index(first)] + NOTES.read_text().rstrip() + "\n"
    target.write_text(text)


if __name__ == "__main__":
    import sys

    root = Path(__file__).resolve().parent.parent
    update_sections(root / "bench" / "results" / "full", root / "docs" / "benchmarks.md", sys.argv[1:])
