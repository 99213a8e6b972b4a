// The published releases, their rollouts and each device's progress, kept from GET /releases,
// GET /releases/{version} and the live `release` and `rollout` events of /ws/ui.
// Pure: no DOM, tested with node --test.

import { HeldEvents } from "./held-events.js";

export const STATES = ["offered", "downloading", "installed", "failed", "rolled_back"];

export class ReleasesState {
  constructor() {
    this.releases = new Map();   // version -> { version, size, created_at, created_by, sha256, rollout, devices: Map }
    this.listeners = new Set();
    this.waiting = new HeldEvents();
  }

  // Before GET /releases: events from now on wait for its list. `done()` after its reset (or its
  // failure) applies them, in order, and returns the versions they name that are not known.
  hold() { this.waiting.hold(); }

  done() { return this.apply(this.waiting.done()); }

  // Calls `listener(versions)` after every change (the versions that changed); returns the unsubscribe.
  subscribe(listener) { this.listeners.add(listener); return () => this.listeners.delete(listener); }

  notify(versions) { if (versions.size) for (const listener of this.listeners) listener(versions); }

  // The list GET /releases gave, and the details (GET /releases/{v}) read for each: replaces everything.
  reset(list, details = []) {
    const versions = new Set(this.releases.keys());
    this.releases.clear();
    for (const release of list) {
      const { type: _type, counts: _counts, devices: _devices, ...record } = release;
      this.releases.set(release.version, { ...record, rollout: release.rollout ?? null, devices: new Map() });
      versions.add(release.version);
    }
    for (const detail of details) {
      const known = this.releases.get(detail.version);
      if (!known) continue;
      for (const entry of detail.devices ?? []) known.devices.set(entry.device_id, deviceEntry(entry));
    }
    this.notify(versions);
  }

  // A batch of /ws/ui events: `release` sets a device's state, `rollout` a release's rollout.
  // Returns the versions it has not heard of (published since the list was read: read it again).
  apply(events) {
    const versions = new Set();
    const unknown = new Set();
    if (this.waiting.keep(events)) return unknown;
    for (const event of events) {
      if (event.type !== "release" && event.type !== "rollout") continue;
      const release = this.releases.get(event.version);
      if (!release) { unknown.add(event.version); continue; }
      if (event.type === "release") {
        const known = release.devices.get(event.device_id);
        if (known && String(known.updated_at) > String(event.updated_at)) continue;  // older than what we have
        release.devices.set(event.device_id, deviceEntry(event));
      } else {
        const { type: _type, ...rollout } = event;
        release.rollout = rollout;
      }
      versions.add(event.version);
    }
    this.notify(versions);
    return unknown;
  }

  // Newest first.
  list() {
    return [...this.releases.values()].sort((a, b) => String(b.created_at).localeCompare(String(a.created_at))
      || b.version.localeCompare(a.version));
  }

  get(version) { return this.releases.get(version) ?? null; }

  // Devices per state for one release, every state present (0 when none).
  counts(version) {
    const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
    for (const entry of this.releases.get(version)?.devices.values() ?? []) counts[entry.state] = (counts[entry.state] ?? 0) + 1;
    return counts;
  }

  // One release's devices, by device id.
  devices(version) {
    return [...(this.releases.get(version)?.devices.values() ?? [])].sort((a, b) => a.device_id.localeCompare(b.device_id));
  }
}

// What a rollout targets, in words: "10 % of the fleet", "devices a, b", "tags canary".
export function targetText(rollout) {
  if (!rollout) return "not rolled out";
  const target = rollout.target ?? {};
  let text;
  if (Array.isArray(target.devices)) text = `devices ${target.devices.join(", ")}`;
  else if (Array.isArray(target.tags)) text = `tags ${target.tags.join(", ")}`;
  else text = `${target.percent ?? 0} % of the fleet`;
  return text + (rollout.allow_downgrade ? " · downgrade allowed" : "");
}

// The body of POST /releases/{version}/rollout from the form's fields: `kind` is "percent",
// "devices" or "tags"; `value` a number or names separated by commas or spaces. Throws on bad input.
export function rolloutBody(kind, value, allowDowngrade) {
  const text = String(value ?? "").trim();
  let body;
  if (kind === "percent") {
    const percent = Number(text);
    if (text === "" || !Number.isFinite(percent) || percent < 0 || percent > 100) {
      throw new Error("give a percentage from 0 to 100");
    }
    body = { percent };
  } else if (kind === "devices" || kind === "tags") {
    const names = [...new Set(text.split(/[\s,]+/).filter(Boolean))];
    if (!names.length) throw new Error(`give at least one of the ${kind}`);
    body = { [kind]: names };
  } else {
    throw new Error(`unknown target ${kind}`);
  }
  if (allowDowngrade) body.allow_downgrade = true;
  return body;
}

// "12.3 MB", "850 kB", "512 B".
export function sizeText(bytes) {
  if (bytes == null) return "–";
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${Math.round(bytes / 1e3)} kB`;
  return `${bytes} B`;
}

function deviceEntry(entry) {
  const { device_id, state, reason, updated_at } = entry;
  return { device_id, state, reason: reason ?? "", updated_at };
}
