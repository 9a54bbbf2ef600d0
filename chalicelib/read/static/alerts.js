// How one alert reads: its score, and the expanded explanation, metrics and strategies.
import { h } from "./dom.js";
import { hint } from "./catalogue.js";
import { DASH, label, scoreClass, time, value } from "./format.js";

export function scorePill(score) {
  const text = typeof score === "number" ? score.toFixed(1) : DASH;
  return h("span", { class: `score ${scoreClass(score)}` }, text);
}

export function detectorChip(name) {
  return h("span", { class: "chip detector", dataset: { detector: name } }, name ?? DASH);
}

/** A two-column table of named values, formatted by what the name means. */
export function valueTable(values, missing = {}) {
  const rows = Object.entries(values || {});
  if (!rows.length) return h("p", { class: "note muted" }, "none");
  return kvTable(rows, missing);
}

/** The same, split into ``n`` side-by-side tables (one column on a phone). */
export function valueColumns(values, missing = {}, n = 3) {
  const rows = Object.entries(values || {});
  const size = Math.ceil(rows.length / n);
  const parts = Array.from({ length: n }, (_, i) => rows.slice(i * size, (i + 1) * size)).filter((p) => p.length);
  return h("div", { class: "kv-columns" }, parts.map((part) => kvTable(part, missing)));
}

function kvTable(rows, missing) {
  return h("table", { class: "kv" }, h("tbody", {}, rows.map(([k, v]) => {
    const reason = v === null || v === undefined ? missing[k] : null;
    return h("tr", { dataset: { key: k } },
      h("th", { scope: "row", title: hint(k) }, label(k)),
      h("td", { class: "val" }, value(k, v), reason ? h("span", { class: "why" }, ` ${reason}`) : null));
  })));
}

function list(items, ordered = false) {
  const clean = (items || []).filter((x) => x !== null && x !== undefined && x !== "");
  if (!clean.length) return h("p", { class: "note muted" }, "none listed");
  return h(ordered ? "ol" : "ul", {}, clean.map((x) => h("li", {}, typeof x === "string" ? x : JSON.stringify(x))));
}

/** The expanded view of an alert: explanation (summary, rationale, key metrics, risks),
 * the detector's metrics and the suggested strategies. */
export function alertDetail(alert) {
  const ex = alert.explanation && typeof alert.explanation === "object" ? alert.explanation : {};
  return h("div", { class: "alert-detail" },
    h("div", { class: "ex-main" },
      h("p", { class: "ex-summary" }, ex.summary || "No summary."),
      ex.rationale ? h("p", { class: "ex-rationale" }, ex.rationale) : null,
      h("h4", {}, "Risk factors"), list(ex.risk_factors),
      h("h4", {}, "Strategies"), list(alert.strategies, true),
      h("p", { class: "ex-meta" },
        `${alert.ticker ?? DASH} · ${alert.detector_name ?? DASH} · created `, time(alert.created_at, ""),
        ` · scan ${alert.scan_id ?? DASH} · id ${alert.id ?? DASH}`)),
    h("div", { class: "ex-side" }, metricTables(ex.key_metrics, alert.metrics)));
}

function metricTables(keyMetrics, metrics) {
  if (JSON.stringify(keyMetrics ?? {}) === JSON.stringify(metrics ?? {})) {
    return [h("h4", {}, "Key metrics"), valueTable(metrics)];
  }
  return [h("h4", {}, "Key metrics"), valueTable(keyMetrics), h("h4", {}, "Metrics"), valueTable(metrics)];
}
