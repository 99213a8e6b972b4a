// Text for numbers and times. The hub's clock is the reference (see live.js: serverNow).

export function percent(value) {
  return value == null ? "–" : `${value.toFixed(value < 10 ? 1 : 0)}%`;
}

export function ago(ms, nowMs) {
  if (ms == null) return "never";
  const s = Math.max(0, Math.round((nowMs - ms) / 1000));
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function clock(ms) {
  return ms == null ? "–" : new Date(ms).toLocaleTimeString();
}

export function dateTime(ms) {
  return ms == null ? "–" : new Date(ms).toLocaleString();
}

export function rate(bytesPerSecond) {
  if (bytesPerSecond == null) return "–";
  const units = ["B/s", "kB/s", "MB/s", "GB/s"];
  let v = bytesPerSecond, i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function parseTime(iso) {
  return iso == null ? null : Date.parse(iso);
}
