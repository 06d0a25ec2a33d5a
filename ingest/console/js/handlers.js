// The handler types, as the API describes them: GET /openapi.json's `Handler` schemas, made
// by each handler's own code. The action form's fields, the list's filter and the handler
// summaries are drawn from them, so a new handler type needs no console code.

import { h } from "./dom.js";

let loaded = null;

/** The handler types, in the API's order: [{type, title, schema}]. Read once per page load. */
export function handlerTypes() {
  loaded ||= fetch("/openapi.json")
    .then((response) => {
      if (!response.ok) throw new Error(`the API description answered ${response.status}`);
      return response.json();
    })
    .then((document) => {
      const schemas = document.components.schemas;
      return schemas.Handler.oneOf.map((reference) => {
        const schema = schemas[reference.$ref.split("/").pop()];
        const type = schema.properties.type.const;
        return { type, title: schema.title || type, schema };
      });
    });
  return loaded;
}

/** A handler in one line: its type and the fields its schema names for a summary. */
export function handlerSummary(types, handler) {
  const known = types.find((t) => t.type === handler.type);
  const shown = (known?.schema["x-herald-summary"] || []).map((key) => handler[key] ?? "");
  return h("span", { class: "mono" }, [handler.type, ...shown].join(" "));
}

/** The properties a form shows: all but the type and those the schema keeps off forms. */
export function formProperties(schema) {
  return Object.entries(schema.properties).filter(([key, property]) =>
    key !== "type" && property["x-herald-form"] !== false);
}

/** Whether a property is edited as JSON text (objects and arrays). */
export function isStructured(property) {
  const type = [].concat(property.type || []);
  return type.includes("object") || type.includes("array");
}
