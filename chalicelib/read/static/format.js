// Number, time and unit formatting. Every formatter takes null/undefined and returns "—".
// Units come from the catalogue (catalogue.js); times read in New York, the market's clock,
// with UTC on hover.
import { entry, field, labelOf } from "./catalogue.js";
import { h } from "./dom.js";

export const DASH = "—";
export const isNum = (v) => typeof v === "number" && Number.isFinite(v);
const MINUS = "−";

export function num(v, digits = 2) {
  if (!isNum(v)) return DASH;
  const text = Math.abs(v).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return v < 0 && Number(text.replaceAll(",", "")) !== 0 ? MINUS + text : text;
}

export function int(v) {
  return isNum(v) ? num(Math.round(v), 0) : DASH;
}

/** A fraction as percent: 0.2345 → "23.5%". */
export function pct(v, digits = 1) {
  return isNum(v) ? `${num(v * 100, digits)}%` : DASH;
}

/** A signed percent: 1.234 → "+1.23%". */
export function signedPct(v, digits = 2) {
  if (!isNum(v)) return DASH;
  return `${v > 0 ? "+" : ""}${num(v, digits)}%`;
}

export function compact(v, prefix = "") {
  if (!isNum(v)) return DASH;
  const a = Math.abs(v);
  const sign = v < 0 ? MINUS : "";
  for (const [unit, size] of [["T", 1e12], ["B", 1e9], ["M", 1e6], ["k", 1e3]]) {
    if (a >= size) return `${sign}${prefix}${(a / size).toFixed(a / size >= 100 ? 0 : 1)}${unit}`;
  }
  return `${sign}${prefix}${a.toFixed(a >= 100 ? 0 : 2)}`;
}

export function bytes(v) {
  if (!isNum(v)) return DASH;
  if (v < 1024) return `${v} B`;
  if (v < 1024 * 1024) return `${(v / 1024).toFixed(1)} KB`;
  return `${(v / 1024 / 1024).toFixed(1)} MB`;
}

export function ms(v) {
  if (!isNum(v)) return DASH;
  return v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`;
}

export function ago(seconds) {
  if (!isNum(seconds)) return DASH;
  const s = Math.max(0, Math.floor(seconds));
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.floor(s / 60)} min ago`;
  if (s < 172800) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function duration(seconds) {
  if (!isNum(seconds)) return DASH;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

// ---- time: New York on screen, UTC on hover --------------------------------------------------
export const MARKET_TZ = "America/New_York";
const NY = new Intl.DateTimeFormat("en-US", {
  timeZone: MARKET_TZ, month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
});
const NY_YEAR = new Intl.DateTimeFormat("en-US", {
  timeZone: MARKET_TZ, year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
});
const NY_DAY = new Intl.DateTimeFormat("en-US", { timeZone: MARKET_TZ, weekday: "short", year: "numeric", month: "short", day: "numeric" });

function parse(iso) {
  const t = typeof iso === "string" ? Date.parse(iso) : Number.NaN;
  return Number.isFinite(t) ? new Date(t) : null;
}

/** "2026-11-27T18:00:00Z" → "Nov 27, 13:00 ET" (the year too when it is not this one). */
export function when(iso) {
  const d = parse(iso);
  if (!d) return iso ? String(iso) : DASH;
  const fmt = d.getUTCFullYear() === new Date().getUTCFullYear() ? NY : NY_YEAR;
  return `${fmt.format(d)} ET`;
}

/** "2026-11-27T18:00:00Z" → "2026-11-27 18:00:00 UTC". */
export function utc(iso) {
  const d = parse(iso);
  return d ? `${d.toISOString().slice(0, 19).replace("T", " ")} UTC` : "";
}

/** A <time> in New York time with its UTC instant on hover. */
export function time(iso, cls = "time") {
  if (!parse(iso)) return h("span", { class: cls }, DASH);
  return h("time", { class: cls, datetime: iso, title: utc(iso) }, when(iso));
}

/** A calendar date "2026-12-04" → "Fri, Dec 4, 2026" (a day has no time zone). */
export function day(dateText) {
  if (typeof dateText !== "string" || !/^\d{4}-\d{2}-\d{2}$/.test(dateText)) return dateText ? String(dateText) : DASH;
  return NY_DAY.format(new Date(`${dateText}T12:00:00Z`));
}

export function dte(expiration, asOf) {
  const a = Date.parse(`${String(asOf).slice(0, 10)}T00:00:00Z`);
  const b = Date.parse(`${expiration}T00:00:00Z`);
  return Number.isFinite(a) && Number.isFinite(b) ? Math.round((b - a) / 86400000) : null;
}

export function scoreClass(score) {
  if (!isNum(score)) return "score-none";
  if (score >= 80) return "score-hot";
  if (score >= 65) return "score-high";
  if (score >= 50) return "score-mid";
  return "score-low";
}

// ---- values by unit (the catalogue's) --------------------------------------------------------
// A difference of two vols is a fraction too (catalogue conventions): shown in vol points.
const VOL_DIFFERENCE = new Set(["term_slope", "skew_25d", "butterfly_25d", "iv_hv_spread", "skew_25d_mean"]);

/** [text, unit suffix] of value ``v`` in catalogue unit ``unit`` (``key`` for vol differences). */
export function byUnit(unit, v, key = "") {
  if (v === null || v === undefined) return [DASH, ""];
  if (unit === "date") return [String(v), ""];
  if (unit === "timestamp") return [when(v), ""];
  if (typeof v === "string") return [v, ""];
  if (!isNum(v)) return [DASH, ""];
  switch (unit) {
    case "fraction":
      if (VOL_DIFFERENCE.has(key)) return [`${v > 0 ? "+" : ""}${num(v * 100, 2)}`, "vol pts"];
      return [pct(v), ""];
    case "percent": return [`${num(v, 2)}%`, ""];
    case "$": return [`$${num(v, 2)}`.replace("$−", "−$"), ""];
    case "$ per 1 % move": return [compact(v, "$"), "per 1 % move"];
    case "ratio": return [`${num(v, 2)}×`, ""];
    case "contracts": return [int(v), "contracts"];
    case "0–100": return [num(v, 0), "/ 100"];
    case "z": return [`${v > 0 ? "+" : ""}${num(v, 2)}`, "σ"];
    case "sessions": return [int(v), "sessions"];
    case "days": return [int(v), "d"];
    case "years": return [num(v, 3), "y"];
    case "per $1": return [num(v, 3), ""];
    case "per $1 per $1": return [num(v, 4), ""];
    case "$ per calendar day": return [num(v, 3), "$ / day"];
    case "$ per vol point": return [num(v, 3), "$ / vol pt"];
    case "$ per rate point": return [num(v, 3), "$ / rate pt"];
    default: return [Math.abs(v) >= 100 ? num(v, 1) : String(Number(v.toPrecision(4))), unit || ""];
  }
}

/** [text, unit suffix] for a catalogued ``key`` (of ``feature``'s records, if given). */
export function parts(key, v, feature = null) {
  const e = feature ? field(feature, key) : entry(key);
  if (!e || (v !== null && typeof v === "object")) return [guess(key, v), ""];
  const [text, unit] = byUnit(e.unit, v, key);
  return [text, text === DASH ? "" : unit];
}

/** A value as text with its unit. */
export function value(key, v, feature = null) {
  const [text, unit] = parts(key, v, feature);
  return unit ? `${text} ${unit}` : text;
}

/** A label: the catalogue's, else the name made readable. */
export function label(key) {
  const text = labelOf(key) || LABELS[key] || key.replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// ---- names the catalogue does not know (a detector's own metrics) -----------------------------
const LABELS = {
  threshold: "Threshold", vol_oi: "Vol/OI", zscore: "z-score", open_interest: "Open interest",
  post_event_expiration_iv: "Post-event IV", pre_event_iv: "Pre-event IV",
  days_to_earnings: "Days to earnings", earnings_date: "Earnings date", event_ratio: "Event ratio",
  implied_move: "Implied move", term_ratio: "Term ratio", premium: "Premium",
};
const FRACTION = new Set(["iv", "call_share", "implied_move", "gap", "pre_event_iv", "post_event_expiration_iv"]);
const RATIO = new Set(["vol_oi", "term_ratio", "event_ratio"]);

function guess(key, v) {
  if (v === null || v === undefined) return DASH;
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "string") return v;
  if (Array.isArray(v)) return list(key, v);
  if (typeof v === "object") return object(key, v);
  if (!isNum(v)) return DASH;
  if (FRACTION.has(key) || key.endsWith("_iv")) return pct(v);
  if (key.endsWith("_pct")) return `${num(v, 2)}%`;
  if (key.includes("gex") || key.includes("premium")) return compact(v, "$");
  if (RATIO.has(key)) return `${num(v, 2)}×`;
  if (key.endsWith("zscore")) return `${v > 0 ? "+" : ""}${num(v, 2)} σ`;
  if (Number.isInteger(v)) return int(v);
  return Math.abs(v) >= 100 ? num(v, 1) : String(Number(v.toPrecision(4)));
}

function list(key, v) {
  if (!v.length) return "none";
  if (v.length <= 6 && v.every((x) => x === null || typeof x !== "object")) return v.map((x) => value(key, x)).join(", ");
  return `${v.length} items`;
}

/** Small objects read as text: a contract as "2027-01-15 370P", anything else as "name value, …". */
function object(key, v) {
  if (v.expiration && isNum(v.strike) && v.right) return `${v.expiration} ${v.strike}${v.right}`;
  const of = entry(key) ? key : null;
  const parts = Object.entries(v).slice(0, 6).map(([k, x]) => `${label(k)} ${x !== null && typeof x === "object" ? "…" : value(k, x, of)}`);
  return parts.join(", ") || DASH;
}
