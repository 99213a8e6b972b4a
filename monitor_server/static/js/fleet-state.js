// What the page knows about every device, kept current from the snapshot and the event stream.
import { parseTime } from "./format.js";

export class FleetState {
  constructor() {
    this.devices = new Map();
    this.listeners = new Set();   // (deviceIds: Set|null, event?) => void; null means "everything"
  }

  subscribe(listener) { this.listeners.add(listener); return () => this.listeners.delete(listener); }
  notify(ids, events) { for (const listener of this.listeners) listener(ids, events); }

  reset(snapshot) {
    this.devices = new Map(snapshot.map((d) => [d.device_id, fromRest(d)]));
    this.notify(null, []);
  }

  apply(events) {
    const changed = new Set();
    for (const event of events) {
      if (event.type === "presence") this.presence(event);
      else if (event.type === "sample") this.sample(event);
      else continue;
      changed.add(event.device_id);
    }
    this.notify(changed, events);
  }

  merge(restDevice) {
    const known = this.devices.get(restDevice.device_id);
    const fresh = fromRest(restDevice);
    if (known?.sample_ts != null) {  // a pushed sample is newer than what the store had committed
      Object.assign(fresh, { last_payload: known.last_payload, sample_ts: known.sample_ts });
      fresh.last_seen = Math.max(fresh.last_seen ?? 0, known.last_seen ?? 0);
    }
    // A presence event newer than this answer (the device went offline while it was in flight)
    // wins: a stale "online" from REST would otherwise stick until the next transition.
    if (known?.presence_since != null && !(fresh.presence_since >= known.presence_since)) {
      const { online, presence_reason, presence_since, connection } = known;
      Object.assign(fresh, { online, presence_reason, presence_since, connection });
    }
    this.devices.set(restDevice.device_id, fresh);
    this.notify(new Set([restDevice.device_id]), []);
  }

  ensure(id) {
    let device = this.devices.get(id);
    if (!device) {
      device = { device_id: id, online: false, incomplete: true, last_payload: null };
      this.devices.set(id, device);
    }
    return device;
  }

  presence(event) {
    const d = this.ensure(event.device_id);
    d.online = event.online;
    d.presence_reason = event.reason;
    d.presence_since = parseTime(event.at);
    d.connection = event.connection;
    // A connected event carries what the device reported (null: not reported, the hub keeps the
    // old value). With them nothing is missing; without, only a device never seen is fetched.
    if ("hostname" in event) {
      reported(d, event, DETAILS);
      d.incomplete = false;
    }
  }

  sample(event) {
    const d = this.ensure(event.device_id);
    const ts = parseTime(event.ts);
    d.last_seen = Math.max(d.last_seen ?? 0, ts);
    if (d.sample_ts != null && ts < d.sample_ts) return;  // a replayed old sample: history only
    d.last_payload = event;
    d.sample_ts = ts;
    if (event.status !== undefined) d.status = event.status;
    if (event.last_error !== undefined) d.last_error = event.last_error;
    reported(d, event, SAMPLE_DETAILS);  // the hub stores these from the newest sample too
  }

  counts() {
    let online = 0;
    for (const d of this.devices.values()) if (d.online) online += 1;
    return { online, offline: this.devices.size - online, total: this.devices.size };
  }
}

const DETAILS = ["hostname", "agent_version", "platform"];
const SAMPLE_DETAILS = ["hostname", "agent_version"];

function reported(device, event, fields) {
  for (const field of fields) if (event[field] != null) device[field] = event[field];
}

function fromRest(d) {
  return {
    device_id: d.device_id, hostname: d.hostname, agent_version: d.agent_version, platform: d.platform,
    online: d.online, connection: d.connection, presence_reason: d.presence_reason,
    presence_since: parseTime(d.presence_since), last_seen: parseTime(d.last_seen),
    last_payload: d.last_payload, status: d.status, last_error: d.last_error, incomplete: false,
  };
}
