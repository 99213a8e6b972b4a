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

/**
 * A size in binary units ("512 B", "1.5 KiB", "15.6 GiB"); "–" for no value.
 * @param {number | null | undefined} n bytes
 * @returns {string}
 */
export function bytes(n) {
  if (n == null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = n, i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return i === 0 ? `${Math.round(v)} B` : `${v.toFixed(Math.abs(v) < 10 ? 1 : 0)} ${units[i]}`;
}

/**
 * Used of total with the share ("3.2 GiB / 16 GiB (20%)"); what is known when a part is missing.
 * @param {number | null | undefined} used bytes
 * @param {number | null | undefined} total bytes
 * @returns {string}
 */
export function usedOf(used, total) {
  if (used == null && total == null) return "–";
  if (used == null) return `– / ${bytes(total)}`;
  if (total == null) return bytes(used);
  return total > 0 ? `${bytes(used)} / ${bytes(total)} (${percent((used / total) * 100)})` : `${bytes(used)} / ${bytes(total)}`;
}

/**
 * A duration in its two largest units ("3 d 4 h", "4 h 12 min", "12 min 5 s", "42 s"); "–" for none.
 * @param {number | null | undefined} seconds
 * @returns {string}
 */
export function duration(seconds) {
  if (seconds == null || !Number.isFinite(seconds) || seconds < 0) return "–";
  const s = Math.floor(seconds);
  const parts = [[Math.floor(s / 86400), "d"], [Math.floor(s / 3600) % 24, "h"],
    [Math.floor(s / 60) % 60, "min"], [s % 60, "s"]];
  const first = parts.findIndex(([value]) => value > 0);
  if (first < 0) return "0 s";
  return parts.slice(first, first + 2).filter(([value], i) => i === 0 || value > 0)
    .map(([value, unit]) => `${value} ${unit}`).join(" ");
}

/**
 * A plain number with at most ``digits`` decimals ("0.42", "12"); "–" for no value.
 * @param {number | null | undefined} value
 * @param {number} [digits]
 * @returns {string}
 */
export function decimal(value, digits = 2) {
  return value == null ? "–" : String(Number(value.toFixed(digits)));
}

/**
 * A temperature in degrees Celsius ("54.5 °C"); "–" for no value.
 * @param {number | null | undefined} value
 * @returns {string}
 */
export function celsius(value) {
  return value == null ? "–" : `${value.toFixed(1)} °C`;
}

/** Bucket widths a chart may ask for (s): the hub answers 60 and up from its minute and hour tiers. */
export const CHART_STEPS = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

/**
 * The smallest listed step that draws ``range`` seconds in at most ``points`` buckets (1 h -> 5 s,
 * 24 h -> 120 s, 30 d -> 1 h, 1 year -> 12 h), the largest listed one beyond.
 * @param {number} range seconds
 * @param {number} [points]
 * @returns {number} seconds
 */
export function chartStep(range, points = 1000) {
  return CHART_STEPS.find((step) => range / step <= points) ?? CHART_STEPS[CHART_STEPS.length - 1];
}

/**
 * Intl.DateTimeFormat options for a time axis spanning ``spanMs``: times of day up to two days,
 * then day and hour up to two weeks, then dates.
 * @param {number} spanMs
 * @returns {Intl.DateTimeFormatOptions}
 */
export function axisFormat(spanMs) {
  const day = 86_400_000;
  if (spanMs <= 2 * day) return { hour: "2-digit", minute: "2-digit" };
  if (spanMs <= 14 * day) return { month: "short", day: "numeric", hour: "2-digit" };
  return { year: spanMs > 180 * day ? "2-digit" : undefined, month: "short", day: "numeric" };
}

/**
 * ``count`` evenly spaced times from ``from`` to ``to`` (both included), for axis labels.
 * @param {number} from epoch ms
 * @param {number} to epoch ms
 * @param {number} count at least 2
 * @returns {number[]}
 */
export function ticks(from, to, count) {
  return Array.from({ length: count }, (_, i) => from + ((to - from) * i) / (count - 1));
}

/**
 * The index of the point whose time is nearest ``t`` in points sorted by time; -1 when empty.
 * @param {{t: number}[]} points
 * @param {number} t
 * @returns {number}
 */
export function nearest(points, t) {
  if (!points.length) return -1;
  let lo = 0, hi = points.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (points[mid].t < t) lo = mid + 1; else hi = mid;
  }
  return lo > 0 && t - points[lo - 1].t <= points[lo].t - t ? lo - 1 : lo;
}
