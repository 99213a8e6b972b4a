// Pure logic of a device's maintenance (the device page): a silence whose only matcher is the
// device, with an end time and a comment. No DOM: node --test covers it.

const pad = (n) => String(n).padStart(2, "0");

// A time as a datetime-local input's value (the browser's local time, to the minute).
export function localInput(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// POST /silences for "maintenance until `until`" (a datetime-local value) on this device.
export function maintenanceBody(deviceId, until, comment, nowMs) {
  const raw = String(until ?? "").trim();
  if (!raw) throw new Error("give the time the maintenance ends");
  const ends = new Date(raw).getTime();
  if (!Number.isFinite(ends)) throw new Error("the end time is not a date and time");
  if (ends <= nowMs) throw new Error("the end time must be in the future");
  return {
    matchers: { device: deviceId },
    ends_at: new Date(ends).toISOString(),
    comment: String(comment ?? "").trim() || "maintenance",
  };
}

// The device's maintenance windows among the silences GET /silences lists: those matching this
// device alone and not ended at `nowMs`, the one ending last first.
export function maintenanceOf(silences, deviceId, nowMs) {
  return silences
    .filter((s) => {
      const keys = Object.keys(s.matchers ?? {});
      return keys.length === 1 && s.matchers.device === deviceId && Date.parse(s.ends_at) > nowMs;
    })
    .sort((a, b) => Date.parse(b.ends_at) - Date.parse(a.ends_at) || b.id - a.id);
}
