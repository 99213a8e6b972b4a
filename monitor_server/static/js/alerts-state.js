// The alerts active now (pending or firing, silenced or not), kept from GET /alerts and the live
// `alert` events of /ws/ui (an "ok" one resolves its alert). Pure: no DOM, tested with node --test.

import { HeldEvents } from "./held-events.js";

const RANK = { firing: 0, pending: 1 };

export const alertKey = (a) => `${a.rule_id}|${a.device_id}`;

export class AlertsState {
  constructor() {
    this.alerts = new Map();     // "rule_id|device_id" -> the alert as GET /alerts lists it
    this.listeners = new Set();
    this.waiting = new HeldEvents();
  }

  // Before GET /alerts: events from now on wait for its list. `done()` after its reset (or its
  // failure) applies them, in order.
  hold() { this.waiting.hold(); }

  done() { this.apply(this.waiting.done()); }

  // Calls `listener(deviceIds)` after every change (the devices whose alerts changed); returns the unsubscribe.
  subscribe(listener) { this.listeners.add(listener); return () => this.listeners.delete(listener); }

  notify(ids) { if (ids.size) for (const listener of this.listeners) listener(ids); }

  // The list GET /alerts gave: replaces everything.
  reset(list) {
    const ids = new Set([...this.alerts.values()].map((a) => a.device_id));
    this.alerts.clear();
    for (const alert of list) {
      if (alert.state === "ok") continue;
      this.alerts.set(alertKey(alert), strip(alert));
      ids.add(alert.device_id);
    }
    this.notify(ids);
  }

  // A batch of /ws/ui events: `alert` ones change the list, `device_removed` drops that device's.
  apply(events) {
    if (this.waiting.keep(events)) return;
    const ids = new Set();
    for (const event of events) {
      if (event.type === "alert") {
        const key = alertKey(event);
        if (event.state === "ok" || event.state == null) {
          if (this.alerts.delete(key)) ids.add(event.device_id);
        } else {
          this.alerts.set(key, strip(event));
          ids.add(event.device_id);
        }
      } else if (event.type === "device_removed") {
        for (const [key, alert] of this.alerts) {
          if (alert.device_id === event.device_id) { this.alerts.delete(key); ids.add(event.device_id); }
        }
      }
    }
    this.notify(ids);
  }

  // Firing first, then pending; within each the most severe-sounding rule name order is not ours: by since.
  list(deviceId = null) {
    const shown = [...this.alerts.values()].filter((a) => deviceId === null || a.device_id === deviceId);
    return shown.sort((a, b) => (RANK[a.state] ?? 2) - (RANK[b.state] ?? 2)
      || String(a.since).localeCompare(String(b.since)) || alertKey(a).localeCompare(alertKey(b)));
  }

  // How many alerts of this device fire now (silenced ones included: silences hold notifications only).
  firing(deviceId) {
    let n = 0;
    for (const alert of this.alerts.values()) if (alert.device_id === deviceId && alert.state === "firing") n += 1;
    return n;
  }

  counts() {
    const counts = { firing: 0, pending: 0, silenced: 0 };
    for (const alert of this.alerts.values()) {
      if (alert.state in counts) counts[alert.state] += 1;
      if (alert.silenced) counts.silenced += 1;
    }
    return counts;
  }
}

// The body POST /silences takes to silence one alert (its device and rule) for `seconds` from `nowMs`.
export function silenceBody(alert, seconds, comment, nowMs) {
  return {
    matchers: { device: alert.device_id, rule: alert.rule },
    ends_at: new Date(nowMs + seconds * 1000).toISOString(),
    comment,
  };
}

function strip(alert) {
  const { type: _type, ...record } = alert;
  return record;
}
