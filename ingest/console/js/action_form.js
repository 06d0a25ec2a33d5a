// Creating and editing an action: the settings operators change most as plain fields, the
// structured ones (conditions, retry policy, a handler's objects) as JSON. The handler's
// fields are drawn from its type's schema (see handlers.js), so every type has its form
// without code of its own here. A new action is created with POST /v1/actions; an edit is a
// JSON merge patch of what changed, sent with the revision it was based on (If-Match), so
// that two people editing at once cannot overwrite each other.

import { api } from "./api.js";
import { field, fill, h, heading, notify, run, select } from "./dom.js";
import { formProperties, handlerTypes, isStructured } from "./handlers.js";

const PRIORITIES = [["critical", "critical"], ["high", "high"], ["normal", "normal"], ["low", "low"]];

function parseJson(label, text, fallback) {
  if (!text.trim()) return fallback;
  try { return JSON.parse(text); } catch (error) { throw new Error(`${label} is not JSON: ${error.message}`); }
}

function numberOrNull(text) {
  return text.trim() === "" ? null : Number(text);
}

/** What the form holds of handler `type`'s properties: a field left empty is left out (its
 *  default, or what is stored: a write-only secret), or null where the schema allows it.
 *  (An empty object would not do: `body: {}` beside `form: {}` is two bodies.) */
function readHandler(form, type, schema) {
  const handler = { type };
  for (const [key, property] of formProperties(schema)) {
    const element = form.elements[`handler.${type}.${key}`];
    const label = property.title || key;
    const types = [].concat(property.type || []);
    if (types.includes("boolean")) {
      if (element?.checked || property.default !== undefined) handler[key] = Boolean(element?.checked);
      continue;
    }
    const text = element?.value ?? "";
    if (text.trim() === "") {
      if (types.includes("null")) handler[key] = null;
      continue;
    }
    if (isStructured(property)) handler[key] = parseJson(label, text, undefined);
    else if (types.includes("integer") || types.includes("number")) handler[key] = Number(text);
    else handler[key] = text.trim();
  }
  return handler;
}

/** The action the form describes, in the API's shape. */
function read(form, types) {
  const value = (name) => form.elements[name].value;
  const handlerType = value("handler_type");
  const chosen = types.find((t) => t.type === handlerType);
  const priorityText = value("priority").trim();
  return {
    name: value("name").trim(),
    description: value("description").trim() || null,
    event_types: value("event_types").split(",").map((t) => t.trim()).filter(Boolean),
    source: value("source").trim() || null,
    conditions: parseJson("Conditions", value("conditions"), []),
    priority: /^-?\d+$/.test(priorityText) ? Number(priorityText) : priorityText || "normal",
    mode: value("mode"),
    handler: readHandler(form, handlerType, chosen.schema),
    retry: parseJson("Retry policy", value("retry"), { max_attempts: 5 }),
    rate_limit_per_s: numberOrNull(value("rate_limit_per_s")),
    max_concurrency: numberOrNull(value("max_concurrency")),
    enabled: form.elements.enabled.checked,
  };
}

/** One of a handler's properties as a form control, named `handler.<type>.<key>`. */
function handlerField(type, key, property, value) {
  const name = `handler.${type}.${key}`;
  const label = property.title || key;
  if (property.enum) {
    return field(label, select(name, property.enum.map((v) => [v, v]), value ?? property.default));
  }
  if (isStructured(property)) {
    const text = value === undefined || value === null ? "" : JSON.stringify(value, null, 2);
    return field(`${label} (JSON)`, h("textarea", { name, rows: 2 }, text));
  }
  const types = [].concat(property.type || []);
  if (types.includes("boolean")) {
    return h("label", { class: "inline" },
      h("input", { type: "checkbox", name, checked: Boolean(value ?? property.default) }), label);
  }
  if (types.includes("integer") || types.includes("number")) {
    return field(label, h("input", { name, type: "number", value: value ?? "", min: property.minimum,
      max: property.maximum, placeholder: property.default }));
  }
  if (property.writeOnly) {
    return field(`${label} (write-only; empty keeps the stored one)`,
      h("input", { name, type: "password", autocomplete: "off" }));
  }
  return field(label, h("input", { name, value: value ?? "", type: property.format === "uri" ? "url" : "text",
    placeholder: property.examples?.[0] }));
}

/** A JSON merge patch (RFC 7396) turning `before` into `after`, for the keys `after` has. */
function mergePatch(before, after) {
  const patch = {};
  for (const [key, value] of Object.entries(after)) {
    const old = before?.[key];
    if (value && typeof value === "object" && !Array.isArray(value) && old && typeof old === "object" && !Array.isArray(old)) {
      const inner = mergePatch(old, value);
      for (const gone of Object.keys(old)) {
        if (!(gone in value) && key === "headers") inner[gone] = null;
      }
      if (Object.keys(inner).length) patch[key] = inner;
    } else if (JSON.stringify(old) !== JSON.stringify(value) && value !== undefined) {
      patch[key] = value;
    }
  }
  return patch;
}

/** The form, filled from `action` (or blank); `done` runs after a successful save. */
export async function actionForm(action, done) {
  const types = await handlerTypes();
  const a = action || {
    name: "", description: "", event_types: [], source: null, conditions: [], priority: "normal", mode: "async",
    handler: { type: types[0].type }, retry: { max_attempts: 5 },
    rate_limit_per_s: null, max_concurrency: null, enabled: true,
  };
  const handler = a.handler;
  const input = (name, value, attrs = {}) => h("input", { name, value: value ?? "", ...attrs });
  const area = (name, value, rows = 4) => h("textarea", { name, rows }, value);
  // Each type's fields, shown only while that type is chosen.
  const handlerFields = types.map(({ type, schema }) => {
    const values = type === handler.type ? handler : {};
    const group = h("fieldset", { class: "grid2", "data-handler": type },
      h("legend", {}, schema.title || type),
      formProperties(schema).map(([key, property]) => handlerField(type, key, property, values[key])));
    group.hidden = type !== handler.type;
    return group;
  });
  const form = h("form", { class: "panel", id: "action-form", "aria-labelledby": "form-title" },
    h("h2", { id: "form-title" }, action ? `Edit ${action.name}` : "Settings"),
    h("div", { class: "grid2" },
      field("Name", input("name", a.name, { required: true, maxlength: 200 })),
      field("Event types (comma-separated; * one segment, # any)", input("event_types", a.event_types.join(", "),
        { required: true, placeholder: "order.created, invoice.*" })),
      field("Source (optional)", input("source", a.source)),
      field("Priority (number or critical/high/normal/low)", input("priority", a.priority, { list: "priorities" })),
      field("Mode", select("mode", [["async", "async"], ["sync", "sync"]], a.mode)),
      field("Handler", select("handler_type", types.map(({ type, title }) => [type, `${type}: ${title}`]), handler.type)),
      field("Rate limit per second (empty: none)", input("rate_limit_per_s", a.rate_limit_per_s, { type: "number", min: 1 })),
      field("Max concurrency (empty: none)", input("max_concurrency", a.max_concurrency, { type: "number", min: 1 })),
      field("Description", input("description", a.description))),
    handlerFields,
    h("datalist", { id: "priorities" }, PRIORITIES.map(([v]) => h("option", { value: v }))),
    field("Conditions (JSON array, e.g. [{\"path\": \"data.amount\", \"op\": \"gt\", \"value\": 100}])",
      area("conditions", JSON.stringify(a.conditions, null, 2))),
    field("Retry policy (JSON: {\"max_attempts\": 5, \"delays_s\": [30, 60]} or {\"backoff\": \"exponential\", …})",
      area("retry", JSON.stringify(a.retry), 2)),
    h("label", { class: "inline" }, h("input", { type: "checkbox", name: "enabled", checked: a.enabled }), "Enabled"),
    h("div", { class: "toolbar" },
      h("button", { type: "submit", class: "primary" }, action ? "Save changes" : "Create action"),
      action ? h("button", { type: "button", onclick: () => form.remove() }, "Cancel") : null),
    h("div", { id: "form-result" }));
  form.elements.handler_type.addEventListener("change", () => {
    for (const node of form.querySelectorAll("[data-handler]")) {
      node.hidden = node.dataset.handler !== form.elements.handler_type.value;
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(form.querySelector("button[type=submit]"), async () => {
      const wanted = read(form, types);
      if (!action) {
        const created = await api("POST", "/v1/actions", wanted);
        await done(created);
        return;
      }
      // A changed type replaces the handler whole (a merge would keep the old type's fields);
      // within a type, a field the form emptied is removed (null), unless it is write-only.
      const sameType = wanted.handler.type === action.handler.type;
      const chosen = types.find((t) => t.type === wanted.handler.type);
      for (const [key, property] of sameType ? formProperties(chosen.schema) : []) {
        if (action.handler[key] !== undefined && !(key in wanted.handler) && !property.writeOnly) {
          wanted.handler[key] = null;
        }
      }
      const patch = sameType
        ? mergePatch(action, wanted)
        : { ...mergePatch({ ...action, handler: undefined }, { ...wanted, handler: undefined }), handler: wanted.handler };
      if (!Object.keys(patch).length) {
        notify("Nothing changed.");
        return;
      }
      await api("PATCH", `/v1/actions/${action.id}`, patch, { "If-Match": `"${action.revision}"` });
      // Reopened first, so that "Saved." means the page shows the saved action.
      await done();
      notify("Saved.");
    });
  });
  return form;
}

export async function newActionPage(main) {
  const result = h("div", {});
  fill(main, heading("New action"), await actionForm(null, async (created) => {
    const secret = created.handler?.secrets?.[0] || created.handler?.secret;
    fill(main, heading(`Created ${created.name}`),
      secret ? h("div", { class: "secret", role: "status" },
        h("p", {}, h("strong", {}, "Signing secret, shown this once: "), h("code", { id: "new-secret" }, secret)),
        h("p", {}, "Give it to the receiver to verify webhook signatures.")) : null,
      h("p", {}, h("a", { href: `#/actions/${created.id}`, id: "created-action" }, "Open the action")));
    document.getElementById("page-title").focus();
  }), result);
}
