// @ts-check
// Command arguments as an operator types them (the device page's form and the fleet's bulk bar).

/**
 * The typed text as a JSON object: null when empty, undefined when it is not a JSON object.
 * @param {string} text
 * @returns {Record<string, any> | null | undefined}
 */
export function parseArgs(text) {
  const raw = text.trim();
  if (!raw) return null;
  try {
    const value = JSON.parse(raw);
    if (value && typeof value === "object" && !Array.isArray(value)) return value;
  } catch { /* not JSON: undefined below */ }
  return undefined;
}
