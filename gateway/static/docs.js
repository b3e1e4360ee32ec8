// Renders /openapi.json as a readable reference. No dependencies; DOM built with textContent only.
"use strict";

const SPEC_URL = "/openapi.json";
const METHODS = ["get", "post", "put", "patch", "delete"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function resolve(spec, object) {
  // Follows a local "$ref" (e.g. "#/components/schemas/Patient") to its target.
  if (!object || !object.$ref) return object;
  return object.$ref.replace(/^#\//, "").split("/").reduce((node, key) => node && node[key], spec);
}

function refName(object) {
  return object && object.$ref ? object.$ref.split("/").pop() : null;
}

function typeLabel(spec, schema) {
  const name = refName(schema);
  const target = resolve(spec, schema) || {};
  if (target.type === "array") return `array of ${typeLabel(spec, target.items || {})}`;
  let label = name || target.type || (target.properties ? "object" : "any");
  if (target.format) label += ` (${target.format})`;
  if (target.nullable) label += " | null";
  return label;
}

function schemaNotes(schema) {
  const notes = [];
  if (schema.readOnly) notes.push("read-only");
  if (schema.writeOnly) notes.push("write-only");
  if (schema.enum) notes.push(`one of: ${schema.enum.join(", ")}`);
  for (const key of ["minimum", "maximum", "minLength", "maxLength", "pattern", "default"]) {
    if (schema[key] !== undefined) notes.push(`${key}: ${JSON.stringify(schema[key])}`);
  }
  if (schema.description) notes.push(schema.description);
  return notes.join(" · ");
}

function renderSchema(spec, schema, seen = new Set()) {
  // A nested list of properties; stops at a schema already being expanded (recursion).
  const name = refName(schema);
  if (name && seen.has(name)) return el("span", { class: "note" }, `(${name}, see above)`);
  const target = resolve(spec, schema) || {};
  const inner = new Set(seen);
  if (name) inner.add(name);
  if (target.type === "array") return renderSchema(spec, target.items || {}, inner);
  if (!target.properties) return el("span", { class: "type" }, typeLabel(spec, schema));
  const required = new Set(target.required || []);
  const items = Object.entries(target.properties).map(([property, propertySchema]) => {
    const resolved = resolve(spec, propertySchema) || {};
    const nested = resolved.properties || (resolved.type === "array" && (resolve(spec, resolved.items) || {}).properties);
    return el(
      "li",
      {},
      el("code", {}, property), " ",
      el("span", { class: "type" }, typeLabel(spec, propertySchema)), " ",
      required.has(property) ? el("span", { class: "required" }, "required") : null, " ",
      el("span", { class: "note" }, schemaNotes(resolved)),
      nested ? renderSchema(spec, propertySchema, inner) : null,
    );
  });
  return el("ul", { class: "schema" }, items);
}

function renderSecurity(spec, operation) {
  const security = operation.security !== undefined ? operation.security : spec.security || [];
  const roles = operation["x-roles"] || [];
  const badges = [];
  if (security.length === 0) badges.push(el("span", { class: "badge public" }, "public"));
  for (const requirement of security) {
    for (const scheme of Object.keys(requirement)) badges.push(el("span", { class: "badge" }, `auth: ${scheme}`));
  }
  for (const role of roles) badges.push(el("span", { class: "badge" }, `role: ${role}`));
  if (operation["x-phi-resource"]) badges.push(el("span", { class: "badge phi" }, `PHI: ${operation["x-phi-resource"]} (audited)`));
  return el("div", {}, badges);
}

function renderParameters(spec, parameters) {
  if (!parameters.length) return null;
  const rows = parameters.map((reference) => {
    const parameter = resolve(spec, reference);
    return el(
      "tr", {},
      el("td", {}, el("code", {}, parameter.name)),
      el("td", {}, parameter.in),
      el("td", {}, el("span", { class: "type" }, typeLabel(spec, parameter.schema || {}))),
      el("td", {}, parameter.required ? el("span", { class: "required" }, "required") : "optional"),
      el("td", { class: "note" }, [parameter.description, schemaNotes(resolve(spec, parameter.schema) || {})].filter(Boolean).join(" · ")),
    );
  });
  return [
    el("h4", {}, "Parameters"),
    el("table", {}, el("thead", {}, el("tr", {}, ["Name", "In", "Type", "", "Notes"].map((h) => el("th", {}, h)))), el("tbody", {}, rows)),
  ];
}

function renderBody(spec, requestBody) {
  const body = resolve(spec, requestBody);
  if (!body) return null;
  return Object.entries(body.content || {}).map(([mediaType, media]) => [
    el("h4", {}, `Request body (${mediaType}${body.required ? ", required" : ""})`),
    renderSchema(spec, media.schema || {}),
  ]);
}

function renderResponses(spec, responses) {
  const items = Object.entries(responses || {}).map(([status, reference]) => {
    const response = resolve(spec, reference);
    const content = Object.entries(response.content || {});
    const headers = Object.keys(response.headers || {});
    const ok = status.startsWith("2");
    const headerNote = headers.length ? el("span", { class: "note" }, ` · headers: ${headers.join(", ")}`) : null;
    const status_ = el("span", { class: `status ${ok ? "ok" : "error"}` }, status);
    if (!ok) {
      // Errors share one body shape: name it on the same line; it is expanded once at the end of the page.
      const types = content.map(([mediaType, media]) => `${typeLabel(spec, media.schema || {})} (${mediaType})`);
      return el("li", {}, status_, " ", response.description || "", el("span", { class: "note" }, ` → ${types.join(", ")}`),
        headerNote);
    }
    return el(
      "li", {}, status_, " ", response.description || "", headerNote,
      content.map(([mediaType, media]) => el(
        "div", {}, el("span", { class: "note" }, `${mediaType}: `), renderSchema(spec, media.schema || {}),
      )),
    );
  });
  return [el("h4", {}, "Responses"), el("ul", { class: "schema" }, items)];
}

function renderOperation(spec, path, method, operation) {
  const anchor = operation.operationId || `${method}-${path}`;
  const card = el(
    "section", { class: "operation", id: anchor },
    el("h3", {}, el("span", { class: `method ${method}` }, method.toUpperCase()), el("span", { class: "path" }, path),
      el("span", { class: "summary" }, operation.summary || "")),
    renderSecurity(spec, operation),
    operation.description ? el("p", { class: "note" }, operation.description) : null,
    renderParameters(spec, operation.parameters || []),
    renderBody(spec, operation.requestBody),
    renderResponses(spec, operation.responses),
  );
  card.dataset.search = [method, path, operation.summary, (operation.tags || []).join(" "), (operation["x-roles"] || []).join(" ")]
    .join(" ").toLowerCase();
  return card;
}

function groupByTag(spec) {
  const groups = new Map((spec.tags || []).map((tag) => [tag.name, []]));
  for (const [path, pathItem] of Object.entries(spec.paths || {})) {
    for (const method of METHODS) {
      const operation = pathItem[method];
      if (!operation) continue;
      const tag = (operation.tags || ["other"])[0];
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push({ path, method, operation });
    }
  }
  return groups;
}

function render(spec) {
  const info = spec.info || {};
  document.title = `${info.title || "API"} reference`;
  document.getElementById("title").textContent = info.title || "API reference";
  document.getElementById("subtitle").textContent = `Version ${info.version || "?"} · OpenAPI ${spec.openapi || "?"}` +
    (info.description ? ` · ${info.description}` : "");
  const main = document.getElementById("operations");
  const toc = document.getElementById("toc");
  for (const [tag, operations] of groupByTag(spec)) {
    if (!operations.length) continue;
    main.append(el("h2", { id: `tag-${tag}` }, tag));
    toc.append(el("h2", {}, tag));
    for (const { path, method, operation } of operations) {
      const card = renderOperation(spec, path, method, operation);
      main.append(card);
      toc.append(el("a", { href: `#${card.id}` }, `${method.toUpperCase()} ${path}`));
    }
  }
  const problem = ((spec.components || {}).schemas || {}).Problem;
  if (problem) {
    main.append(el("h2", { id: "problem" }, "Error body"),
      el("section", { class: "operation" },
        el("p", { class: "note" }, "Every error answers application/problem+json with this shape (RFC 9457):"),
        renderSchema(spec, { $ref: "#/components/schemas/Problem" })));
    toc.append(el("h2", {}, "Errors"), el("a", { href: "#problem" }, "Problem"));
  }
  document.getElementById("filter").addEventListener("input", (event) => {
    const needle = event.target.value.trim().toLowerCase();
    for (const card of main.querySelectorAll(".operation")) card.hidden = needle !== "" && !card.dataset.search.includes(needle);
  });
}

fetch(SPEC_URL, { headers: { Accept: "application/json" } })
  .then((response) => {
    if (!response.ok) throw new Error(`${SPEC_URL} answered ${response.status}`);
    return response.json();
  })
  .then(render)
  .catch((error) => {
    const subtitle = document.getElementById("subtitle");
    subtitle.textContent = `Could not load the API description: ${error.message}`;
    subtitle.className = "error-box";
  });
