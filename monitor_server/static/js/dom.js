// Small DOM helpers shared by the admin pages: build elements, show a secret once, copy text.
import { dateTime, parseTime } from "./format.js";

// h("td", { className: "x", text: "y", onclick: f, "aria-label": "z" }, child...): one element.
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null) continue;
    if (key === "text") element.textContent = value;
    else if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key in element && !key.includes("-")) element[key] = value;
    else element.setAttribute(key, value);
  }
  element.append(...children);
  return element;
}

export function when(iso) {
  return iso == null ? "never" : dateTime(parseTime(iso));
}

// A row of cells; strings become text, elements are appended as they are.
export function row(cells, props = {}) {
  return h("tr", props, ...cells.map((cell) => (cell instanceof Node ? h("td", {}, cell) : h("td", { text: cell ?? "–" }))));
}

export function button(text, onclick, props = {}) {
  return h("button", { type: "button", text, onclick, ...props });
}

// Clipboard API where the page is a secure context (https, localhost), a selection copy elsewhere.
export async function copyText(text, field) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    field.select();
    return document.execCommand("copy");
  }
}

// A secret the hub shows only in this answer: read-only field, copy button, and the warning.
export function secretField(label, value, id) {
  const field = h("input", { id, readOnly: true, value, spellcheck: false, className: "secret", autocomplete: "off" });
  const note = h("span", { className: "muted", role: "status" });
  const copy = button("Copy", async () => {
    note.textContent = (await copyText(value, field)) ? "copied" : "select it and copy by hand";
  }, { "aria-label": `Copy ${label.toLowerCase()}` });
  return h("div", { className: "secret-row" }, h("label", { htmlFor: id, text: label }), field, copy, note);
}

// Run a write, saying ``pending`` meanwhile, then its outcome (or the hub's reason) in ``status``.
export async function attempt(status, work, pending = "") {
  status.textContent = pending;
  status.classList.remove("error");
  try {
    const message = await work();
    if (message) status.textContent = message;
    return true;
  } catch (error) {
    status.textContent = error.message;
    status.classList.add("error");
    return false;
  }
}
