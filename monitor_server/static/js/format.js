// @ts-check
// Text for numbers and times. The hub's clock is the reference (see live.js: serverNow).

/**
 * A percentage, one decimal below 10 ("7.5%", "42%"); "–" for no value.
 * @param {number | null | undefined} value
 * @returns {string}
 */
export function percent(value) {
  return value == null ? "–" : `${value.toFixed(value < 10 ? 1 : 0)}%`;
}

/**
 * How long ago a time was, coarsely ("just now", "12 s ago", "3 min ago"); "never" for no time.
 * @param {number | null | undefined} ms epoch milliseconds
 * @param {number} nowMs epoch milliseconds
 * @returns {string}
 */
export function ago(ms, nowMs) {
  if (ms == null) return "never";
  const s = Math.max(0, Math.round((nowMs - ms) / 1000));
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/**
 * A time of day in the browser's locale; "–" for no time.
 * @param {number | null | undefined} ms epoch milliseconds
 * @returns {string}
 */
export function clock(ms) {
  return ms == null ? "–" : new Date(ms).toLocaleTimeString();
}

/**
 * A date and time in the browser's locale; "–" for no time.
 * @param {number | null | undefined} ms epoch milliseconds
 * @returns {string}
 */
export function dateTime(ms) {
  return ms == null ? "–" : new Date(ms).toLocaleString();
}

/**
 * A rate in decimal units ("1.5 kB/s"); "–" for no value.
 * @param {number | null | undefined} bytesPerSecond
 * @returns {string}
 */
export function rate(bytesPerSecond) {
  if (bytesPerSecond == null) return "–";
  const units = ["B/s", "kB/s", "MB/s", "GB/s"];
  let v = bytesPerSecond, i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/**
 * Epoch milliseconds of an ISO 8601 time, or null for none.
 * @param {string | null | undefined} iso
 * @returns {number | null}
 */
export function parseTime(iso) {
  return iso == null ? null : Date.parse(iso);
}

/**
 * A count with its noun, singular for exactly one ("1 device", "0 devices", "2 devices").
 * @param {number} n
 * @param {string} noun singular; the plural adds "s"
 * @returns {string}
 */
export function count(n, noun) {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}
