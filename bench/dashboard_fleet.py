"""The dashboard with a big fleet, measured in the browser (headless system Chromium).

Starts a real ``monitor-server`` process (bench.common: pinned to core 0), connects N simulated
agents (``monitor_agent.simulator``; this process pinned to core 1, the browser launched before
that and not pinned) that report every ``--interval`` s, logs a page in with the hub token and
reports, as JSON:

- first render: page load (navigation start) -> the fleet table drawn with all N devices sorted,
  and -> the snapshot of every device (the first frame over /ws/ui) received, for ``--loads`` loads;
- rows in the DOM: the table is virtualized, so this is a screenful plus overscan, not N;
- sort click: a header click -> the re-sorted rows painted (next frame), for six columns, both ways;
- live updates: requestAnimationFrame intervals (p50/p95/max), long tasks (> 50 ms) and the fleet
  view's own work per frame while samples stream in, first with the page still, then scrolling;
- the page's socket stayed live throughout (a browser too slow to read is disconnected by the hub).

    .venv/bin/python -m bench.dashboard_fleet --devices 10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, async_playwright

from bench.common import (
    TOKEN,
    fleet_for,
    pin_load_generator,
    raise_nofile,
    running_fleet,
    running_hub,
    wait_for,
)
from monitor_agent.simulator import quiet_agents, tune_gc

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SORTED_COLUMNS = ["cpu", "ram", "last_seen", "hostname", "online", "device_id"]

# Resolves with performance.now() (ms since navigation start) once all n devices are in the table.
# Polled in animation frames: the fleet view draws in its own frame callback, registered earlier.
FIRST_RENDER = """(n) => new Promise((resolve) => {
  const check = () => {
    const view = window.monitorDashboard?.fleetView;
    const drawn = view && view.shown.length >= n && document.querySelector("#fleet tbody tr");
    if (drawn) resolve(performance.now()); else requestAnimationFrame(check);
  };
  check();
})"""

# Before the page's scripts: note when the first frame of /ws/ui (the snapshot) arrives.
FIRST_FRAME = """(() => {
  const Native = WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", () => { window.__snapshotAt ??= performance.now(); }, { once: true });
    }
  };
})();"""

# A header click -> the frame that shows the new order has been rendered (a task after its rAF).
SORT_CLICK = """async (key) => {
  const view = window.monitorDashboard.fleetView;
  const started = performance.now();
  document.querySelector(`#fleet th[data-sort="${key}"] button`).click();
  await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
  return { ms: performance.now() - started, flush_ms: view.stats.lastFlushMs,
    first: document.querySelector("#fleet tbody tr").dataset.deviceId, dir: view.sort.dir };
}"""

DOM_COUNTS = """() => ({ rows: document.querySelectorAll("#fleet tbody tr").length,
  elements: document.getElementsByTagName("*").length,
  heap_mib: performance.memory ? performance.memory.usedJSHeapSize / 2 ** 20 : null })"""

# Collects rAF intervals and long tasks until window.__stop is set; scrolls when asked.
FRAME_PROBE = """(scroll) => {
  window.__frames = []; window.__long = []; window.__stop = false;
  window.monitorDashboard.fleetView.stats.maxFlushMs = 0;
  new PerformanceObserver((l) => window.__long.push(...l.getEntries().map((e) => e.duration)))
    .observe({ type: "longtask" });
  let last = performance.now(), down = true;
  const step = (now) => {
    window.__frames.push(now - last);
    last = now;
    if (scroll) {
      const bottom = document.documentElement.scrollHeight - innerHeight;
      if (scrollY >= bottom - 10) down = false; else if (scrollY <= 10) down = true;
      scrollBy(0, down ? 240 : -240);
    }
    if (!window.__stop) requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
}"""


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "n": len(values),
        "p50": round(pick(0.5), 1),
        "p95": round(pick(0.95), 1),
        "max": round(ordered[-1], 1),
    }


async def log_in(page: Page, base: str) -> None:
    await page.goto(base + "/ui")
    await page.get_by_label("Hub token").fill(TOKEN)
    await page.get_by_role("button", name="Log in with token").click()
    await page.locator("#link-state").filter(has_text="live").wait_for()


async def frames(page: Page, seconds: float, scroll: bool) -> dict[str, Any]:
    """Frame intervals and the table's own work per frame over ``seconds`` of live updates."""
    flushes = await page.evaluate("window.monitorDashboard.fleetView.stats.flushes")
    await page.evaluate(FRAME_PROBE, scroll)
    await asyncio.sleep(seconds)
    await page.evaluate("window.__stop = true")
    intervals: list[float] = await page.evaluate("window.__frames.slice(1)")
    long_tasks: list[float] = await page.evaluate("window.__long")
    stats = await page.evaluate("window.monitorDashboard.fleetView.stats")
    return {
        "frame_interval_ms": summary(intervals),
        "long_tasks": len(long_tasks),
        "longest_task_ms": round(max(long_tasks, default=0), 1),
        "table_flushes": stats["flushes"] - flushes,
        "table_work_per_frame_max_ms": round(stats["maxFlushMs"], 1),
        "rows_in_dom_at_end": (await page.evaluate(DOM_COUNTS))["rows"],
    }


async def sort_clicks(page: Page) -> dict[str, Any]:
    clicks = []
    for key in SORTED_COLUMNS:
        for _ in range(2):
            clicks.append(await page.evaluate(SORT_CLICK, key))
    return {
        "click_to_painted_ms": summary([c["ms"] for c in clicks]),
        "table_work_ms": summary([c["flush_ms"] for c in clicks]),
        "clicks": len(clicks),
    }


async def measure(args: argparse.Namespace, browser: Browser, base: str) -> dict[str, Any]:
    page = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
    page.on("pageerror", lambda error: print("page error:", error, file=sys.stderr))
    await page.add_init_script(FIRST_FRAME)
    await log_in(page, base)
    renders, snapshots = [], []
    for _ in range(args.loads):
        await page.reload()
        renders.append(await page.evaluate(FIRST_RENDER, args.devices))
        snapshots.append(await page.evaluate("window.__snapshotAt ?? null"))
    dom = await page.evaluate(DOM_COUNTS)
    still = await frames(page, args.seconds, scroll=False)
    scrolling = await frames(page, args.seconds, scroll=True)
    await page.evaluate("window.scrollTo(0, 0)")
    sorting = await sort_clicks(page)
    link = await page.locator("#link-state").text_content()
    loads = await page.evaluate("performance.getEntriesByType('navigation').length")
    return {
        "first_render_ms": [round(ms) for ms in renders],
        "snapshot_received_ms": [None if ms is None else round(ms) for ms in snapshots],
        "rows_in_dom": dom["rows"],
        "dom_elements": dom["elements"],
        "js_heap_mib": round(dom["heap_mib"], 1) if dom["heap_mib"] else None,
        "sort": sorting,
        "live_updates_still": still,
        "live_updates_scrolling": scrolling,
        "socket_live_at_end": link == "live" and loads == 1,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load = os.getloadavg()  # the machine may be shared: say how busy it was
    async with async_playwright() as playwright:
        # Launched before this process pins itself to the load core: the browser may use both cores
        # (the hub is pinned to core 0), as an operator's browser would not share the agents' core.
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        pinned = pin_load_generator()
        with tempfile.TemporaryDirectory() as folder:
            async with running_hub(Path(folder) / "hub") as hub:
                fleet = fleet_for(hub, args.devices, interval=args.interval, ramp=args.ramp, prefix="dev-")
                async with running_fleet(fleet):
                    started = time.monotonic()
                    await wait_for(lambda: fleet.connected() == args.devices, 600, "every agent online")
                    online_s = time.monotonic() - started
                    await asyncio.sleep(args.settle)  # the connect storm's tail, off the hub
                    result = await measure(args, browser, hub.http_url)
        await browser.close()
    return {
        "load_average_at_start": [round(x, 2) for x in load],
        "load_generator_pinned_to_core_1": pinned,
        "devices": args.devices,
        "metrics_interval_s": args.interval,
        "samples_per_second": round(args.devices / args.interval),
        "agents_online_after_s": round(online_s, 1),
        **result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples per agent")
    parser.add_argument("--ramp", type=float, default=10.0, help="seconds over which the agents connect")
    parser.add_argument("--seconds", type=float, default=10.0, help="each live-update measuring window")
    parser.add_argument("--loads", type=int, default=5, help="page loads timed for the first render")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds between all online and the page")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    quiet_agents(logging.CRITICAL)
    tune_gc()
    raise_nofile()
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "dashboard_fleet.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
