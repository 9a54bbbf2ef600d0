// What every number means: labels, units and definitions from /catalogue.json (the writer's
// catalogue, chalicelib/catalogue.py). Loaded once; until it answers, names read as themselves.
import { getJSON } from "./api.js";

let doc = { features: {}, contract_fields: {}, conventions: {} };
let loading = null;

/** Load the catalogue once; resolves (with or without it: labels then fall back to names). */
export function loadCatalogue() {
  loading ??= getJSON("catalogue.json").then(
    (body) => { if (body && typeof body === "object") doc = body; },
    (err) => { console.warn("catalogue", err); },
  );
  return loading;
}

/** The entry of a feature, or of a contract field; null for a name the catalogue lacks. */
export function entry(name) {
  return doc.features?.[name] ?? doc.contract_fields?.[name] ?? null;
}

/** A field of a structured feature (by_expiry.sigma_move, say). */
export function field(feature, name) {
  const found = (doc.features?.[feature]?.fields || []).find((f) => f.name === name);
  return found ?? entry(name);
}

export function labelOf(name) {
  return entry(name)?.label ?? null;
}

/** "Definition (unit)" for a tooltip. */
export function hint(name, feature = null) {
  const e = feature ? field(feature, name) : entry(name);
  if (!e) return null;
  return e.unit ? `${e.definition} Unit: ${e.unit}.` : e.definition;
}
