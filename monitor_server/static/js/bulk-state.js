// @ts-check
// Bulk commands and tags, the pure part: which devices are selected (kept across the virtualized
// fleet table), tag lists typed by an operator, and the progress line of a bulk command. The DOM
// side is bulk.js.

/** The hub's tag rule (protocol/frames.py TAG_PATTERN): what the dashboard accepts too. */
export const TAG_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/=-]{0,63}$/;
export const MAX_TAGS = 32;

/**
 * Tags typed as "a, b c": split on commas and spaces, each once, in the order typed.
 * @param {string} text
 * @returns {{ tags: string[], bad: string[] }} `bad`: what the hub would refuse
 */
export function parseTags(text) {
  const tags = [...new Set(text.split(/[\s,]+/).filter(Boolean))];
  return { tags, bad: tags.filter((t) => !TAG_PATTERN.test(t)) };
}

/**
 * Every tag of the fleet with how many devices carry it, most used first, then by name.
 * @param {Iterable<{ tags?: string[] }>} devices
 * @returns {[string, number][]}
 */
export function tagCounts(devices) {
  /** @type {Map<string, number>} */
  const counts = new Map();
  for (const d of devices) for (const tag of d.tags ?? []) counts.set(tag, (counts.get(tag) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** The devices an operator ticked: a set of ids that survives re-sorting, filtering and scrolling. */
export class Selection {
  constructor() {
    /** @type {Set<string>} */
    this.ids = new Set();
  }

  /**
   * @param {string} id
   * @param {boolean} on
   */
  set(id, on) { if (on) this.ids.add(id); else this.ids.delete(id); }

  /**
   * Selects (or clears) all of `ids`, e.g. the rows the filter shows.
   * @param {string[]} ids
   * @param {boolean} on
   */
  setAll(ids, on) { for (const id of ids) this.set(id, on); }

  /**
   * Whether every one of `ids` is selected (false for none).
   * @param {string[]} ids
   */
  covers(ids) { return ids.length > 0 && ids.every((id) => this.ids.has(id)); }

  /**
   * Forgets ids that no longer exist (a removed device).
   * @param {{ has: (id: string) => boolean }} known
   */
  prune(known) { for (const id of this.ids) if (!known.has(id)) this.ids.delete(id); }

  clear() { this.ids.clear(); }

  get size() { return this.ids.size; }

  /** @returns {string[]} the selected ids, sorted */
  list() { return [...this.ids].sort(); }
}

/**
 * @typedef {object} BulkSummary what GET /commands/bulk/{id} answers
 * @property {string} id
 * @property {string | null} command
 * @property {number} total
 * @property {Record<string, number>} counts pending, delivered, acked, failed, expired, cancelled
 * @property {Record<string, any>[]} commands
 */

/**
 * One line for the progress view: "12 of 20 acked · 1 failed · 7 waiting".
 * @param {BulkSummary} summary
 * @returns {string}
 */
export function progressText(summary) {
  const c = summary.counts;
  const waiting = (c.pending ?? 0) + (c.delivered ?? 0);
  const parts = [`${c.acked ?? 0} of ${summary.total} acked`];
  if (c.failed) parts.push(`${c.failed} failed`);
  if (waiting) parts.push(`${waiting} waiting`);
  if (c.expired) parts.push(`${c.expired} expired`);
  if (c.cancelled) parts.push(`${c.cancelled} cancelled`);
  return parts.join(" · ");
}

/**
 * Whether every part of the bulk command has reached a final state.
 * @param {BulkSummary} summary
 */
export function finished(summary) {
  return (summary.counts.pending ?? 0) + (summary.counts.delivered ?? 0) === 0;
}
