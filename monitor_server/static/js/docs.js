// /docs: fetch /openapi.json and render it as HTML. DOM nodes and textContent only (no innerHTML),
// so nothing in the document can inject markup; no CDN, no dependency.

const METHODS = ["get", "post", "put", "patch", "delete"];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// The little Markdown the document uses: paragraphs, `code`, **bold**.
function inline(text) {
  const out = [];
  const pattern = /``([^`]+)``|`([^`]+)`|\*\*([^*]+)\*\*/g;  // ``code`` too: pydantic keeps docstrings
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    out.push(text.slice(last, match.index));
    const code = match[1] ?? match[2];
    out.push(code != null ? el("code", {}, code) : el("strong", {}, match[3]));
    last = match.index + match[0].length;
  }
  out.push(text.slice(last));
  return out;
}

function prose(text) {
  if (!text) return [];
  return text.trim().split(/\n\s*\n/).map((para) => el("p", {}, inline(para.replace(/\s*\n\s*/g, " "))));
}

function refName(ref) {
  return ref.split("/").pop();
}

function resolve(spec, obj) {
  let item = obj;
  while (item && item.$ref) {
    const path = item.$ref.replace(/^#\//, "").split("/");
    item = path.reduce((node, key) => node?.[key], spec);
  }
  return item ?? {};
}

function constraints(schema) {
  const notes = [];
  const add = (label, value) => value !== undefined && notes.push(`${label} ${JSON.stringify(value)}`);
  add("format", schema.format);
  // JSON numbers lose digits in JavaScript: name the common bounds instead of printing them.
  const huge = (v) => v !== undefined && Math.abs(v) >= 9.2e18;
  if (schema.minimum === -Number.MAX_VALUE && schema.maximum === Number.MAX_VALUE) notes.push("finite");
  else if (huge(schema.minimum) && huge(schema.maximum)) notes.push("64-bit");
  else {
    add("≥", schema.minimum);
    add("≤", schema.maximum);
  }
  add(">", schema.exclusiveMinimum);
  add("<", schema.exclusiveMaximum);
  add("min length", schema.minLength);
  add("max length", schema.maxLength);
  add("pattern", schema.pattern);
  add("default", schema.default);
  if (schema.enum) notes.push(`one of ${schema.enum.map((v) => JSON.stringify(v)).join(", ")}`);
  if (schema.const !== undefined) notes.push(`always ${JSON.stringify(schema.const)}`);
  return notes.length ? el("span", { class: "note" }, ` (${notes.join("; ")})`) : null;
}

// A schema as a one-line type followed, for objects, by a nested list of properties.
function schemaView(spec, schema, depth = 0) {
  if (!schema) return el("span", {}, "any");
  if (schema.$ref) {
    const name = refName(schema.$ref);
    return el("a", { href: `#schema-${name}` }, name);
  }
  for (const key of ["anyOf", "oneOf"]) {
    if (schema[key]) {
      const parts = schema[key].map((s) => schemaView(spec, s, depth));
      const joined = parts.flatMap((part, i) => (i ? [" | ", part] : [part]));
      return el("span", {}, joined, constraints(schema));
    }
  }
  if (schema.allOf) {
    const parts = schema.allOf.map((s) => schemaView(spec, s, depth));
    return el("span", {}, parts.flatMap((part, i) => (i ? [" and ", part] : [part])));
  }
  const type = Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type;
  if (type === "array") return el("span", {}, "array of ", schemaView(spec, schema.items, depth), constraints(schema));
  const label = type ?? (schema.enum ? "enum" : schema.const !== undefined ? typeof schema.const : "any");
  const head = el("span", {}, label, constraints(schema));
  const extra = schema.additionalProperties;
  const extraSchema = extra && typeof extra === "object" ? extra : null;
  if (type === "object" && !schema.properties && extraSchema) {
    return el("span", {}, "object of ", schemaView(spec, extraSchema, depth + 1), constraints(schema));
  }
  if (type !== "object" || !schema.properties || depth > 4) return head;
  const required = new Set(schema.required ?? []);
  const rows = Object.entries(schema.properties).map(([name, prop]) =>
    el(
      "li",
      {},
      el("span", { class: "name" }, name),
      required.has(name) ? el("span", { class: "req" }, " required") : null,
      ": ",
      schemaView(spec, prop, depth + 1),
      prop.description ? el("div", { class: "note" }, prop.description) : null,
    ),
  );
  if (extra === true) rows.push(el("li", { class: "note" }, "other fields are accepted"));
  if (extraSchema) rows.push(el("li", {}, el("span", { class: "note" }, "other fields: "), schemaView(spec, extraSchema, depth + 1)));
  return el("span", {}, head, el("ul", {}, rows));
}

function parametersView(spec, parameters) {
  const rows = parameters.map((raw) => {
    const p = resolve(spec, raw);
    return el(
      "tr",
      {},
      el("td", {}, el("code", {}, p.name), p.required ? el("span", { class: "req" }, " required") : null),
      el("td", {}, p.in),
      el("td", { class: "schema" }, schemaView(spec, p.schema)),
      el("td", {}, inline(p.description ?? "")),
    );
  });
  const head = el("tr", {}, ["Name", "In", "Type", "Description"].map((h) => el("th", {}, h)));
  return el("div", { class: "table-wrap" }, el("table", {}, el("thead", {}, head), el("tbody", {}, rows)));
}

function contentView(spec, content) {
  return Object.entries(content ?? {}).map(([mediaType, media]) =>
    el("div", { class: "schema" }, el("span", { class: "note" }, `${mediaType}: `), schemaView(spec, media.schema)),
  );
}

function securityView(spec, op) {
  const requirements = op.security ?? spec.security ?? [];
  if (!requirements.length) return el("span", { class: "lock" }, "public");
  const names = requirements.flatMap((r) => Object.keys(r));
  return el("span", { class: "lock" }, `auth: ${names.join(" or ")}`);
}

function operationView(spec, path, method, op) {
  const body = el("div", { class: "op-body" }, prose(op.description));
  if (op.parameters?.length) body.append(el("h3", {}, "Parameters"), parametersView(spec, op.parameters));
  if (op.requestBody) {
    const request = resolve(spec, op.requestBody);
    body.append(el("h3", {}, request.required ? "Request body (required)" : "Request body"));
    body.append(...contentView(spec, request.content));
  }
  body.append(el("h3", {}, "Responses"));
  const responses = Object.entries(op.responses ?? {}).map(([code, raw]) => {
    const response = resolve(spec, raw);
    return el(
      "li",
      {},
      el("span", { class: "status-code" }, code),
      " ",
      inline(response.description ?? ""),
      contentView(spec, response.content),
    );
  });
  body.append(el("ul", {}, responses));
  const summary = el(
    "summary",
    {},
    el("span", { class: `method ${method}` }, method.toUpperCase()),
    el("span", { class: "path" }, path),
    el("span", {}, op.summary ?? ""),
    securityView(spec, op),
  );
  return el("details", { class: "op", id: `${method}-${path}` }, summary, body);
}

function render(spec) {
  const root = document.getElementById("docs");
  const info = spec.info ?? {};
  root.append(el("h1", {}, `${info.title ?? "API"} `, el("span", { class: "muted" }, info.version ?? "")));
  root.append(el("p", { class: "muted" }, `OpenAPI ${spec.openapi}`), ...prose(info.description));

  const byTag = new Map((spec.tags ?? []).map((t) => [t.name, { tag: t, ops: [] }]));
  for (const [path, item] of Object.entries(spec.paths ?? {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const name = op.tags?.[0] ?? "other";
      if (!byTag.has(name)) byTag.set(name, { tag: { name }, ops: [] });
      byTag.get(name).ops.push(operationView(spec, path, method, op));
    }
  }
  for (const { tag, ops } of byTag.values()) {
    if (!ops.length) continue;
    root.append(el("h2", {}, tag.name), ...prose(tag.description), ...ops);
  }

  root.append(el("h2", {}, "Schemas"));
  for (const [name, schema] of Object.entries(spec.components?.schemas ?? {})) {
    root.append(
      el("section", { id: `schema-${name}` }, el("h3", {}, name), prose(schema.description), el("div", { class: "schema" }, schemaView(spec, schema))),
    );
  }
}

async function main() {
  const status = document.getElementById("docs-status");
  try {
    const response = await fetch("/openapi.json", { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
    status.remove();
    if (location.hash) document.getElementById(decodeURIComponent(location.hash.slice(1)))?.scrollIntoView();
  } catch (error) {
    status.textContent = `Could not load /openapi.json: ${error.message}`;
  }
}

main();
