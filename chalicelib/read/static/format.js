// Number, time and feature formatting. Every formatter takes null/undefined and returns "—".

export const DASH = "—";
const isNum = (v) => typeof v === "number" && Number.isFinite(v);

export function num(v, digits = 2) {
  if (!isNum(v)) return DASH;
  return v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function int(v) {
  return isNum(v) ? Math.round(v).toLocaleString("en-US") : DASH;
}

/** A fraction as percent: 0.2345 → "23.5%". */
export function pct(v, digits = 1) {
  return isNum(v) ? `${(v * 100).toFixed(digits)}%` : DASH;
}

/** A signed fraction as percentage points: 0.012 → "+1.2 pp". */
export function pp(v, digits = 1) {
  if (!isNum(v)) return DASH;
  return `${v >= 0 ? "+" : "−"}${Math.abs(v * 100).toFixed(digits)} pp`;
}

export function compact(v, prefix = "") {
  if (!isNum(v)) return DASH;
  const a = Math.abs(v);
  const sign = v < 0 ? "−" : "";
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

/** "2026-11-27T21:00:00Z" → "2026-11-27 21:00" (UTC, as the data is). */
export function when(iso) {
  if (typeof iso !== "string" || iso.length < 16) return iso ? String(iso) : DASH;
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
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

// ---- features: how each key reads (see chalicelib/analytics/features.py for units) ----------
const FRACTION = new Set([
  "atm_iv", "atm_iv_front", "atm_iv_back", "iv_25d_call", "iv_25d_put", "hv_10", "hv_20", "hv_60",
  "iv", "implied_volatility", "call_share", "implied_move", "gap",
]);
const POINTS = new Set(["term_slope", "skew_25d", "butterfly_25d", "skew_25d_mean"]);
const PRICE = new Set([
  "underlying_price", "max_pain", "call_wall", "put_wall", "sma_50", "sma_200", "strike", "mid",
  "spot", "close", "straddle",
]);
const MONEY = new Set(["gex_total", "premium", "call_gex", "put_gex", "net_gex"]);
const RATIO = new Set(["put_call_volume_ratio", "put_call_oi_ratio", "iv_hv_ratio", "vol_oi", "term_ratio", "event_ratio"]);
const SCORE = new Set(["iv_rank", "iv_percentile"]);

export const LABELS = {
  atm_iv: "ATM IV (30d)", atm_iv_front: "ATM IV front", atm_iv_back: "ATM IV back",
  term_slope: "Term slope", iv_rank: "IV rank", iv_percentile: "IV percentile",
  iv_hv_ratio: "IV / HV20", hv_10: "HV 10d", hv_20: "HV 20d", hv_60: "HV 60d",
  skew_25d: "25Δ skew", skew_25d_zscore: "25Δ skew z", butterfly_25d: "25Δ butterfly",
  put_call_volume_ratio: "P/C volume", put_call_oi_ratio: "P/C open int.",
  spread_pct: "Median spread", max_pain: "Max pain", call_wall: "Call wall", put_wall: "Put wall",
  gex_total: "GEX total", expected_move: "Expected move", unusual_count: "Unusual contracts",
  sma_50: "SMA 50", sma_200: "SMA 200", underlying_price: "Spot", contracts: "Contracts",
  front_expiration: "Front expiry", back_expiration: "Back expiry", skew_expiration: "Skew expiry",
  max_pain_expiration: "Max pain expiry", call_volume: "Call volume", put_volume: "Put volume",
  call_open_interest: "Call open int.", put_open_interest: "Put open int.",
  iv_25d_call: "IV 25Δ call", iv_25d_put: "IV 25Δ put", iv_history_days: "IV history days",
  skew_25d_mean: "25Δ skew mean", threshold: "Threshold", vol_oi: "Vol/OI", zscore: "z-score",
  open_interest: "Open interest", post_event_expiration_iv: "Post-event IV", pre_event_iv: "Pre-event IV",
  days_to_earnings: "Days to earnings", earnings_date: "Earnings date",
};

export function label(key) {
  const text = LABELS[key] || key.replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function feature(key, v) {
  if (v === null || v === undefined) return DASH;
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "string") return v;
  if (Array.isArray(v)) return list(key, v);
  if (typeof v === "object") return object(key, v);
  if (!isNum(v)) return DASH;
  if (FRACTION.has(key) || key.endsWith("_iv")) return pct(v);
  if (POINTS.has(key)) return pp(v);
  if (key.endsWith("_pct")) return `${v.toFixed(2)}%`;
  if (PRICE.has(key) || key.startsWith("sma_")) return num(v);
  if (MONEY.has(key) || key.includes("gex") || key.includes("premium")) return compact(v, "$");
  if (RATIO.has(key)) return v.toFixed(2);
  if (SCORE.has(key)) return v.toFixed(0);
  if (key.endsWith("zscore")) return `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(2)}`;
  if (Number.isInteger(v)) return int(v);
  return Math.abs(v) >= 100 ? num(v, 1) : String(Number(v.toPrecision(4)));
}

function list(key, v) {
  if (!v.length) return "none";
  if (v.length <= 6 && v.every((x) => x === null || typeof x !== "object")) return v.map((x) => feature(key, x)).join(", ");
  return `${v.length} items`;
}

/** Small objects read as text: a contract as "2027-01-15 370P", anything else as "name value, …". */
function object(key, v) {
  if (key === "expected_move") return expectedMove(v);
  if (v.expiration && isNum(v.strike) && v.right) return `${v.expiration} ${v.strike}${v.right}`;
  const parts = Object.entries(v).slice(0, 6).map(([k, x]) => `${label(k)} ${x !== null && typeof x === "object" ? "…" : feature(k, x)}`);
  return parts.join(", ") || DASH;
}

export function expectedMove(m) {
  if (!m || typeof m !== "object") return DASH;
  const move = isNum(m.sigma_move) ? `±${num(m.sigma_move)}` : DASH;
  const share = isNum(m.sigma_move_pct) ? ` (${m.sigma_move_pct.toFixed(1)}%)` : "";
  return `${move}${share} by ${m.expiration ?? "?"}`;
}
