// @ts-check
// What the page knows about every device, kept current from the snapshot and the event stream.
import { parseTime } from "./format.js";

/**
 * One device as the page knows it; times are epoch milliseconds.
 * @typedef {object} Device
 * @property {string} device_id
 * @property {string | null} [hostname]
 * @property {string | null} [agent_version]
 * @property {string | null} [platform]
 * @property {boolean} online
 * @property {string | null} [connection]
 * @property {string | null} [presence_reason]
 * @property {number | null} [presence_since]
 * @property {number | null} [last_seen]
 * @property {Record<string, any> | null} last_payload the newest sample
 * @property {number | null} [sample_ts]
 * @property {string | null} [status]
 * @property {string | null} [last_error]
 * @property {string | null} [name] the display name an operator gave it
 * @property {string[]} [tags] every tag (operators' and the agent's)
 * @property {string[]} [agent_tags] the tags the agent reports in hello
 * @property {boolean} incomplete details still to be fetched
 */

/** @typedef {Record<string, any>} LiveEvent a presence, sample, device or device_removed event from /ws/ui */
/** @typedef {(ids: Set<string> | null, events: LiveEvent[]) => void} Listener null: everything changed */

export class FleetState {
  constructor() {
    /** @type {Map<string, Device>} */
    this.devices = new Map();
    /** @type {Set<Listener>} */
    this.listeners = new Set();
  }

  /**
   * Calls `listener` after every change; returns the unsubscribe function.
   * @param {Listener} listener
   * @returns {() => boolean}
   */
  subscribe(listener) { this.listeners.add(listener); return () => this.listeners.delete(listener); }

  /**
   * Tells every listener which devices changed.
   * @param {Set<string> | null} ids
   * @param {LiveEvent[]} events
   */
  notify(ids, events) { for (const listener of this.listeners) listener(ids, events); }

  /**
   * Replaces everything with a snapshot (GET /devices shape).
   * @param {Record<string, any>[]} snapshot
   */
  reset(snapshot) {
    this.devices = new Map(snapshot.map((d) => [d.device_id, fromRest(d)]));
    this.notify(null, []);
  }

  /**
   * Applies live events in order (a removed device is forgotten); other event types are ignored.
   * @param {LiveEvent[]} events
   */
  apply(events) {
    const changed = new Set();
    for (const event of events) {
      if (event.type === "presence") this.presence(event);
      else if (event.type === "sample") this.sample(event);
      else if (event.type === "device_removed") this.devices.delete(event.device_id);
      else if (event.type === "device") this.organised(event);
      else continue;
      changed.add(event.device_id);
    }
    this.notify(changed, events);
  }

  /**
   * Merges one device fetched over REST, keeping newer live sample and presence.
   * @param {Record<string, any>} restDevice
   */
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

  /**
   * The device with this id, created (offline, incomplete) when unknown.
   * @param {string} id
   * @returns {Device}
   */
  ensure(id) {
    let device = this.devices.get(id);
    if (!device) {
      device = { device_id: id, online: false, incomplete: true, last_payload: null };
      this.devices.set(id, device);
    }
    return device;
  }

  /**
   * Applies a presence event.
   * @param {LiveEvent} event
   */
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

  /**
   * Applies a device event (renamed or tagged by an operator).
   * @param {LiveEvent} event
   */
  organised(event) {
    const d = this.ensure(event.device_id);
    Object.assign(d, { name: event.name ?? null, tags: event.tags ?? [], agent_tags: event.agent_tags ?? [] });
  }

  /**
   * Applies a sample event; an older one than the newest known only moves last_seen.
   * @param {LiveEvent} event
   */
  sample(event) {
    const d = this.ensure(event.device_id);
    const ts = parseTime(event.ts);
    d.last_seen = Math.max(d.last_seen ?? 0, ts ?? 0);
    if (d.sample_ts != null && ts < d.sample_ts) return;  // a replayed old sample: history only
    d.last_payload = event;
    d.sample_ts = ts;
    if (event.status !== undefined) d.status = event.status;
    if (event.last_error !== undefined) d.last_error = event.last_error;
    reported(d, event, SAMPLE_DETAILS);  // the hub stores these from the newest sample too
  }

  /**
   * How many devices are online, offline and known.
   * @returns {{ online: number, offline: number, total: number }}
   */
  counts() {
    let online = 0;
    for (const d of this.devices.values()) if (d.online) online += 1;
    return { online, offline: this.devices.size - online, total: this.devices.size };
  }
}

const DETAILS = ["hostname", "agent_version", "platform"];
const SAMPLE_DETAILS = ["hostname", "agent_version"];

/**
 * Copies the fields the event reports (not null) onto the device.
 * @param {Device} device
 * @param {LiveEvent} event
 * @param {string[]} fields
 */
function reported(device, event, fields) {
  for (const field of fields) if (event[field] != null) device[field] = event[field];
}

/**
 * A device from its REST shape (ISO times) to the page's (epoch milliseconds).
 * @param {Record<string, any>} d
 * @returns {Device}
 */
function fromRest(d) {
  return {
    device_id: d.device_id, hostname: d.hostname, agent_version: d.agent_version, platform: d.platform,
    online: d.online, connection: d.connection, presence_reason: d.presence_reason,
    presence_since: parseTime(d.presence_since), last_seen: parseTime(d.last_seen),
    last_payload: d.last_payload, status: d.status, last_error: d.last_error, incomplete: false,
    name: d.name ?? null, tags: d.tags ?? [], agent_tags: d.agent_tags ?? [],
  };
}
