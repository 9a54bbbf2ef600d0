// The ticker view: tiles of the selected expiry and of the whole chain, smile, term structure,
// GEX, IV history, the chain of the selected expiry, alerts and every feature.
//
// Every number is the writer's (features, by_expiry, history) or the export's quotes: the page
// computes no analytics of its own. Tiles and charts say which expiry they are about.
import { getJSON } from "./api.js";
import { alertDetail, detectorChip, scorePill, valueColumns } from "./alerts.js";
import { hint } from "./catalogue.js";
import { COLORS, gexChart, historyChart, smileChart, termChart } from "./charts.js";
import { h, note, replace } from "./dom.js";
import * as f from "./format.js";

const NEAR = 15; // strikes either side of the ATM strike shown until "show all"
const PHONE = matchMedia("(max-width: 600px)");
// Chain columns, the strike side last (calls read left to right into the strike, puts out).
const COLUMNS = ["open_interest", "volume", "vega", "theta", "gamma", "delta", "implied_volatility", "last", "bid", "mid", "ask"];
const PHONE_COLUMNS = ["bid", "ask", "implied_volatility", "delta", "volume", "open_interest"]; // after the strike
const HEAD = {
  open_interest: "OI", volume: "Vol", implied_volatility: "IV", delta: "Δ", gamma: "Γ", theta: "Θ $/d",
  vega: "Vega $", bid: "Bid $", ask: "Ask $", last: "Last $", mid: "Mid $",
};
const CSV_FIELDS = ["strike", "bid", "ask", "mid", "last", "volume", "open_interest", "implied_volatility", "delta", "gamma", "theta", "vega", "rho"];
// Shown in charts and tiles, not in the key-features table.
const SHOWN_ELSEWHERE = new Set([
  "term_structure", "gex_by_strike", "max_pain_by_expiry", "unusual_contracts", "sma_recent", "by_expiry",
  "iv_hv_spread_history", "expected_move", "oi_change_by_strike",
]);

let view = null;
let seq = 0;
const isNum = f.isNum;
const enc = encodeURIComponent;

function card(title, cls = "") {
  const sub = h("span", { class: "sub" });
  const body = h("div", { class: "card-body" }, note("Loading…"));
  const heading = h("h3", {}, title);
  const el = h("section", { class: `card ${cls}` }, h("header", { class: "card-head" }, heading, sub), body);
  return { el, sub, body, title: heading };
}

function build(root, ticker, ctx) {
  const select = h("select", { id: "expiry-select" });
  select.addEventListener("change", () => ctx.navigate(ticker, select.value));
  const v = {
    ticker, root, ctx, select, showAll: false, side: "C", expiration: null, expirations: [],
    title: h("h2", {}, ticker), spot: h("span", { class: "spot" }), change: h("span", { class: "change" }),
    asOf: h("span", { class: "muted as-of" }), earnings: h("span", { class: "muted earnings" }),
    expiryTiles: h("div", { class: "kpis", id: "expiry-tiles" }), chainTiles: h("div", { class: "kpis", id: "chain-tiles" }),
    expiryHead: h("h3", { class: "tiles-head" }), smile: card("Volatility smile", "smile-card"), term: card("Term structure", "term-card"),
    gex: card("Gamma exposure by strike", "gex-card"), history: card("IV history", "history-card"),
    chain: card("Option chain", "chain-card"), features: card("Key features"), alerts: card("Alerts"),
  };
  replace(root,
    h("div", { class: "ticker-head" },
      h("a", { href: "#/", class: "back" }, "← Overview"), v.title, v.spot, v.change, v.asOf, v.earnings,
      h("label", { class: "expiry" }, "Expiry ", select)),
    h("section", { class: "tiles", "aria-label": "Selected expiry" }, v.expiryHead, v.expiryTiles),
    h("section", { class: "tiles", "aria-label": "Whole chain" }, h("h3", { class: "tiles-head" }, "Whole chain · all expiries"), v.chainTiles),
    h("div", { class: "chart-grid" }, v.smile.el, v.term.el, v.gex.el, v.history.el),
    v.chain.el,
    v.alerts.el,
    v.features.el);
  root.dataset.ticker = ticker;
  delete root.dataset.expiration;
  return v;
}

/** Show ``ticker`` (at expiry ``wanted`` if listed) in ``root``; refreshes in place. */
export async function showTicker(root, ticker, wanted, ctx) {
  if (!view || view.ticker !== ticker || view.root !== root) view = build(root, ticker, ctx);
  view.ctx = ctx;
  const v = view;
  const token = ++seq;
  const live = () => token === seq && view === v;
  const base = `options/${enc(ticker)}`;
  const soft = (p) => p.then(ctx.track, (err) => err);
  try {
    const [exps, feats, hist, alerts] = await Promise.all([
      getJSON(`${base}/expirations`).then(ctx.track),
      soft(getJSON(`features/${enc(ticker)}/latest`)),
      soft(getJSON(`${base}/history`, { days: 365 })),
      soft(getJSON(`alerts/ticker/${enc(ticker)}`, { limit: 100 })),
    ]);
    if (!live()) return;
    const list = exps.expirations || [];
    const exp = chooseExpiry(list, wanted, v.expiration, exps.as_of);
    fillSelect(v, list, exps.as_of, exp);
    if (!exp) {
      replace(v.chain.body, note("This ticker has no listed expirations in the export."));
      return;
    }
    const snap = ctx.track(await getJSON(`${base}/snapshot`, { expiration: exp }));
    if (!live()) return;
    const fx = feats instanceof Error ? null : feats.features || null;
    const missing = feats instanceof Error ? {} : feats.missing || {};
    const rows = hist instanceof Error ? [] : hist.history || [];
    v.expiration = exp;
    const record = (Array.isArray(fx?.by_expiry) ? fx.by_expiry : []).find((r) => r.expiration === exp) || null;
    v.last = { snap, fx, missing, rows, hist, record };
    renderHead(v, snap, fx);
    renderTiles(v, fx, missing, record, snap);
    renderSmile(v, snap);
    renderTerm(v, fx, missing);
    renderGex(v, snap, fx, missing, record);
    renderHistory(v, fx, rows, hist);
    renderChain(v, snap, fx);
    renderFeatures(v, feats);
    renderAlerts(v, alerts);
    root.dataset.expiration = exp;
  } catch (err) {
    if (!live()) return;
    const box = h("section", { class: "card" });
    ctx.fail(box, err, `Couldn't load ${ticker}`);
    replace(root, h("div", { class: "ticker-head" }, h("a", { href: "#/", class: "back" }, "← Overview"), h("h2", {}, ticker)), box);
    view = null; // the next visit builds the view again
  }
}

function chooseExpiry(list, wanted, previous, asOf) {
  if (list.includes(wanted)) return wanted;
  if (list.includes(previous)) return previous;
  let best = list[0] ?? null;
  for (const e of list) if (Math.abs(f.dte(e, asOf) - 30) < Math.abs(f.dte(best, asOf) - 30)) best = e;
  return best;
}

function fillSelect(v, list, asOf, exp) {
  if (list.join() !== v.expirations.join()) {
    v.expirations = list;
    replace(v.select, list.map((e) => h("option", { value: e }, `${e} · ${f.dte(e, asOf)} d`)));
  }
  if (exp) v.select.value = exp;
}

function renderHead(v, snap, fx) {
  v.spot.textContent = isNum(snap.underlying_price) ? `$${f.num(snap.underlying_price)}` : f.DASH;
  const change = fx?.change_pct;
  v.change.textContent = isNum(change) ? f.signedPct(change) : "";
  v.change.dataset.sign = isNum(change) ? (change > 0 ? "up" : change < 0 ? "down" : "flat") : "";
  v.change.title = isNum(change) ? `since the previous close, ${f.value("previous_close", fx.previous_close)}` : "";
  replace(v.asOf, "quotes ", f.time(snap.as_of));
  v.earnings.textContent = fx?.next_earnings ? `earnings ${f.day(fx.next_earnings)}` : "";
}

// ---- tiles ---------------------------------------------------------------------------------
function tile(name, [text, unit], title, key) {
  return h("div", { class: "kpi", title: title || null, dataset: { tile: key } },
    h("span", { class: "kpi-label" }, name),
    h("span", { class: "kpi-value" }, text, unit ? [" ", h("small", { class: "unit" }, unit)] : null));
}

/** A tile of the selected expiry's record (by_expiry), unit from the catalogue. */
function expiryTile(record, key, name, missingText) {
  const v = record?.[key];
  const reason = record?.missing?.[key] ?? (record ? null : missingText);
  const [text, unit] = f.parts(key, v, "by_expiry");
  const shown = key === "sigma_move" && isNum(v) ? [`±${text}`, unit] : [text, unit];
  return tile(name, shown, [hint(key, "by_expiry"), reason ? `Not available: ${reason}` : null].filter(Boolean).join("\n"), key);
}

function chainTile(fx, missing, key, name = null) {
  const v = fx?.[key];
  const reason = v === null || v === undefined ? missing[key] : null;
  return tile(name ?? f.label(key), f.parts(key, v), [hint(key), reason ? `Not available: ${reason}` : null].filter(Boolean).join("\n"), key);
}

function renderTiles(v, fx, missing, record, snap) {
  const days = f.dte(v.expiration, snap.as_of);
  v.expiryHead.textContent = `Selected expiry ${v.expiration} · ${days} days`;
  const why = fx ? "no per-expiry record (the expiry has no live contracts)" : "features not published yet";
  const move = expiryTile(record, "sigma_move", "Exp. move ±1σ", why);
  if (record && isNum(record.sigma_move_pct)) move.lastChild.append(" ", h("small", { class: "unit" }, `${f.num(record.sigma_move_pct, 2)}%`));
  replace(v.expiryTiles,
    expiryTile(record, "atm_iv", "ATM IV", why),
    expiryTile(record, "straddle", "ATM straddle", why),
    move,
    expiryTile(record, "max_pain", "Max pain", why),
    expiryTile(record, "put_call_volume_ratio", "P/C volume", why),
    expiryTile(record, "put_call_oi_ratio", "P/C OI", why),
    expiryTile(record, "net_gex", "Net GEX", why),
    expiryTile(record, "oi_change", "ΔOI", why));
  replace(v.chainTiles,
    chainTile(fx, missing, "atm_iv", "ATM IV 30d"),
    chainTile(fx, missing, "iv_rank"),
    chainTile(fx, missing, "iv_percentile"),
    chainTile(fx, missing, "iv_hv_spread"),
    chainTile(fx, missing, "skew_25d"),
    chainTile(fx, missing, "call_wall"),
    chainTile(fx, missing, "put_wall"),
    chainTile(fx, missing, "zero_gamma"),
    chainTile(fx, missing, "gex_total"),
    chainTile(fx, missing, "gex_0dte_share"));
}

// ---- charts --------------------------------------------------------------------------------
function byStrike(snap) {
  const map = new Map();
  for (const [side, rows] of [["C", snap.calls || []], ["P", snap.puts || []]]) {
    for (const r of rows) {
      if (!map.has(r.strike)) map.set(r.strike, { strike: r.strike, C: null, P: null });
      map.get(r.strike)[side] = r;
    }
  }
  return [...map.values()].sort((a, b) => a.strike - b.strike);
}

function renderSmile(v, snap) {
  const spot = snap.underlying_price;
  const rows = byStrike(snap).map((r) => ({
    strike: r.strike, otm: r.strike >= spot ? "C" : "P", callIv: r.C?.implied_volatility ?? null, putIv: r.P?.implied_volatility ?? null,
  }));
  v.smile.sub.textContent = `${snap.expiration} · ${rows.length} strikes · quoted IVs, out of the money by default`;
  if (!rows.length) {
    replace(v.smile.body, note("No contracts for this expiry."));
    return;
  }
  smileChart(v.smile.body, rows, snap.underlying_price, snap.expiration);
  v.smile.body.firstChild.dataset.smileFor = snap.expiration;
}

function renderTerm(v, fx, missing) {
  const rows = Array.isArray(fx?.term_structure) ? fx.term_structure.filter((r) => isNum(r.atm_iv)) : [];
  if (rows.length < 2) {
    v.term.sub.textContent = "";
    const why = missing.term_structure ?? (fx ? "fewer than two expiries with an ATM IV" : "features not published yet");
    replace(v.term.body, note(`No term structure: ${why}.`));
    return;
  }
  v.term.sub.textContent = `${rows.length} expiries · selected ${v.expiration}`;
  termChart(v.term.body, rows, v.expiration);
}

function renderGex(v, snap, fx, missing, record) {
  // the selected expiry's own GEX by strike (the writer's by_expiry), bound like the tiles
  const rows = Array.isArray(record?.gex_by_strike) ? record.gex_by_strike : [];
  v.gex.title.textContent = `Gamma exposure by strike · ${v.expiration}`;
  if (!rows.length) {
    v.gex.sub.textContent = "";
    const why = record?.missing?.gex_by_strike ?? missing.gex_by_strike ?? (fx ? "not computable" : "features not published yet");
    replace(v.gex.body, note(`No gamma exposure for ${v.expiration}: ${why}.`));
    return;
  }
  v.gex.sub.textContent = "dealer GEX, $ per 1 % move · spot ±10 % and the walls shown: drag to zoom, double-click for all strikes";
  const strike = (x) => (Number.isInteger(x) ? String(x) : f.num(x, 1));
  const marks = [
    { value: snap.underlying_price, label: `spot ${f.num(snap.underlying_price)}`, color: COLORS.spot },
    { value: fx.call_wall, label: `call wall ${strike(fx.call_wall)}`, color: COLORS.call },
    { value: fx.put_wall, label: `put wall ${strike(fx.put_wall)}`, color: COLORS.put },
    { value: fx.zero_gamma, label: `zero gamma ${f.num(fx.zero_gamma)}`, color: COLORS.amber },
    { value: record?.max_pain, label: `max pain ${strike(record?.max_pain)} (${v.expiration})`, color: COLORS.violet },
  ];
  gexChart(v.gex.body, rows, marks, snap.underlying_price);
}

function renderHistory(v, fx, rows, hist) {
  const hv = new Map();
  const series = fx?.iv_hv_spread_history;
  if (series && Array.isArray(series.day)) series.day.forEach((d, i) => hv.set(d, series.hv_20?.[i] ?? null));
  const points = rows
    .filter((r) => isNum(r.atm_iv))
    .map((r) => ({ t: Date.parse(r.as_of) / 1000, iv: r.atm_iv, hv: hv.get(String(r.as_of).slice(0, 10)) ?? null, row: r }))
    .filter((p) => Number.isFinite(p.t));
  if (points.length < 2) {
    v.history.sub.textContent = "";
    replace(v.history.body, note(hist instanceof Error ? `Couldn't load the history: ${hist.message}` : "No IV history yet: it grows by a session a day."));
    return;
  }
  const rank = isNum(fx?.iv_rank) ? ` · IV rank ${f.num(fx.iv_rank, 0)} / 100, percentile ${f.num(fx.iv_percentile, 0)} / 100` : "";
  const provisional = points[points.length - 1].row.provisional ? " · the last session is provisional until its close" : "";
  v.history.sub.textContent = `${points.length} sessions${rank}${provisional} · drag to zoom, double-click to reset`;
  historyChart(v.history.body, points, (p) => {
    const r = p.row;
    return `${f.when(r.close_at ?? r.as_of)}${r.provisional ? " (provisional)" : ""}`;
  });
}

// ---- the chain -----------------------------------------------------------------------------
function unusualKeys(fx) {
  const keys = new Set();
  for (const u of Array.isArray(fx?.unusual_contracts) ? fx.unusual_contracts : []) keys.add(`${u.expiration}|${u.strike}|${u.right}`);
  return keys;
}

/** Mid of a two-sided quote, (bid + ask)/2 (the catalogue's definition); null otherwise. */
function mid(row) {
  return row && isNum(row.bid) && isNum(row.ask) && row.bid > 0 && row.ask >= row.bid ? (row.bid + row.ask) / 2 : null;
}

function cell(row, col) {
  const value = col === "mid" ? mid(row) : row?.[col];
  if (value === null || value === undefined) return f.DASH;
  switch (col) {
    case "implied_volatility": return f.pct(value);
    case "delta": return f.num(value, 2);
    case "gamma": return f.num(value, 4);
    case "theta": case "vega": return f.num(value, 3);
    case "volume": case "open_interest": return f.int(value);
    default: return f.num(value);
  }
}

function sideCells(row, side, spot, listed, expiration, columns) {
  const itm = row && (side === "C" ? row.strike < spot : row.strike > spot);
  return columns.map((col) => {
    const cls = ["num", side === "C" ? "call" : "put", itm ? "itm" : ""];
    let text = cell(row, col);
    let title = null;
    if (col === "volume" && row && listed.has(`${expiration}|${row.strike}|${side}`)) {
      cls.push("unusual");
      text = `⚑ ${text}`;
      title = `unusual activity (listed by the features): volume ${f.int(row.volume)}, open interest ${f.int(row.open_interest)}`;
    }
    return h("td", { class: cls.join(" "), title }, text);
  });
}

function headCell(col) {
  const def = col === "mid" ? "Mid of the quote, (bid + ask)/2, when it is two-sided. Unit: $." : hint(col);
  return h("th", { class: "num", scope: "col", title: def }, HEAD[col]);
}

function csv(v, snap, shown) {
  const lines = [["expiration", "right", ...CSV_FIELDS].join(",")];
  for (const r of shown) {
    for (const side of ["C", "P"]) {
      const c = r[side];
      if (!c) continue;
      const values = CSV_FIELDS.map((k) => {
        const x = k === "mid" ? mid(c) : c[k];
        return x === null || x === undefined ? "" : String(x);
      });
      lines.push([snap.expiration, side, ...values].join(","));
    }
  }
  return `${lines.join("\n")}\n`;
}

function download(name, text) {
  const link = h("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })), download: name, hidden: true });
  document.body.append(link);
  link.click();
  setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
}

function renderChain(v, snap, fx) {
  const spot = snap.underlying_price;
  const rows = byStrike(snap);
  if (!rows.length) {
    replace(v.chain.body, note("No contracts for this expiry."));
    return;
  }
  let atm = 0;
  rows.forEach((r, i) => { if (Math.abs(r.strike - spot) < Math.abs(rows[atm].strike - spot)) atm = i; });
  const shown = v.showAll ? rows : rows.slice(Math.max(0, atm - NEAR), atm + NEAR + 1);
  const listed = unusualKeys(fx);
  const phone = PHONE.matches;
  const cols = phone ? PHONE_COLUMNS : COLUMNS;
  const callCols = cols;
  const putCols = phone ? cols : [...cols].reverse();
  const toggle = h("button", { type: "button", class: "link" }, v.showAll ? `Show ${2 * NEAR + 1} strikes near the money` : `Show all ${rows.length} strikes`);
  toggle.addEventListener("click", () => { v.showAll = !v.showAll; renderChain(v, snap, fx); });
  const save = h("button", { type: "button", class: "link", id: "chain-csv" }, "Download CSV");
  save.addEventListener("click", () => download(`${v.ticker}_${snap.expiration}_${String(snap.as_of).slice(0, 16).replace(":", "")}.csv`, csv(v, snap, shown)));
  v.chain.sub.textContent = `${snap.expiration} · ${f.dte(snap.expiration, snap.as_of)} d · ${rows.length} strikes · ${(snap.calls || []).length + (snap.puts || []).length} contracts · quotes ${f.when(snap.as_of)}`;

  const sides = h("div", { class: "side-switch", role: "group", "aria-label": "Side shown" },
    ["C", "P"].map((s) => {
      const b = h("button", { type: "button", "aria-pressed": String(v.side === s), dataset: { side: s } }, s === "C" ? "Calls" : "Puts");
      b.addEventListener("click", () => { v.side = s; renderChain(v, snap, fx); });
      return b;
    }));
  const strikeHead = h("th", { class: "strike", scope: "col", title: hint("strike") }, "Strike $");
  const strikeCell = (r) => h("th", { class: "strike", scope: "row" }, f.num(r.strike, Number.isInteger(r.strike) ? 0 : 1));
  const rowAttrs = (r) => ({ class: r === rows[atm] ? "atm" : null, dataset: { strike: r.strike, atm: r === rows[atm] ? "true" : null } });
  // a phone shows one side, the strike first; a wider screen both, the strike between them
  const head = phone
    ? h("thead", {}, h("tr", { class: "sides" }, h("th", { scope: "col", class: "strike-head" }, ""),
      h("th", { colspan: cols.length, class: v.side === "C" ? "call" : "put", scope: "colgroup" }, v.side === "C" ? "Calls" : "Puts")),
    h("tr", {}, strikeHead, cols.map(headCell)))
    : h("thead", {},
      h("tr", { class: "sides" },
        h("th", { colspan: callCols.length, class: "call", scope: "colgroup" }, "Calls"),
        h("th", { scope: "col", class: "strike-head" }, ""),
        h("th", { colspan: putCols.length, class: "put", scope: "colgroup" }, "Puts")),
      h("tr", {}, callCols.map(headCell), strikeHead, putCols.map(headCell)));
  const body = h("tbody", {}, shown.map((r) => h("tr", rowAttrs(r), phone
    ? [strikeCell(r), sideCells(r[v.side], v.side, spot, listed, snap.expiration, cols)]
    : [sideCells(r.C, "C", spot, listed, snap.expiration, callCols), strikeCell(r), sideCells(r.P, "P", spot, listed, snap.expiration, putCols)])));
  const table = h("table", { class: "chain", id: "chain-table", dataset: { side: phone ? v.side : "both" } },
    h("caption", { class: "sr-only" }, `Option chain of ${v.ticker}, expiry ${snap.expiration}`), head, body);
  replace(v.chain.body,
    h("div", { class: "chain-tools" },
      h("span", { class: "legend" }, h("span", { class: "swatch atm" }), "ATM strike ", h("span", { class: "swatch itm-call" }), h("span", { class: "swatch itm-put" }), "in the money ",
        h("span", { class: "flag" }, "⚑"), " unusual (features)"),
      phone ? sides : null,
      h("span", { class: "tools" }, toggle, save)),
    h("div", { class: "table-wrap" }, table));
}

PHONE.addEventListener("change", () => {
  if (view?.last && !view.root.hidden) renderChain(view, view.last.snap, view.last.fx);
});

// ---- features and alerts -------------------------------------------------------------------
function renderFeatures(v, feats) {
  if (feats instanceof Error) {
    v.ctx.fail(v.features.body, feats, "Couldn't load the features");
    return;
  }
  const fx = feats.features;
  if (!fx || typeof fx !== "object") {
    v.features.sub.textContent = "";
    replace(v.features.body, note(`No features computed for ${v.ticker} yet: they appear after the analytics step has run.`));
    return;
  }
  const keys = Object.keys(fx).filter((k) => !SHOWN_ELSEWHERE.has(k));
  const values = Object.fromEntries(keys.map((k) => [k, fx[k]]));
  replace(v.features.sub, "as of ", f.time(feats.as_of), " · hover a name for its definition");
  const unusual = Array.isArray(fx.unusual_contracts) ? fx.unusual_contracts : [];
  replace(v.features.body, valueColumns(values, feats.missing || {}), unusual.length ? unusualTable(unusual) : null);
}

function unusualTable(rows) {
  const head = [["Expiry", null], ["Strike $", "num"], ["Right", null], ["Vol", "num"], ["OI", "num"], ["Vol/OI", "num"], ["Premium $", "num"], ["z", "num"]];
  return h("div", { class: "table-wrap" }, h("h4", {}, "Unusual contracts"), h("table", { class: "data" },
    h("thead", {}, h("tr", {}, head.map(([c, cls]) => h("th", { class: cls, scope: "col" }, c)))),
    h("tbody", {}, rows.map((u) => h("tr", {},
      h("td", {}, u.expiration), h("td", { class: "num" }, f.num(u.strike)), h("td", {}, u.right === "C" ? "call" : "put"),
      h("td", { class: "num" }, f.int(u.volume)), h("td", { class: "num" }, f.int(u.open_interest)),
      h("td", { class: "num" }, isNum(u.vol_oi) ? `${f.num(u.vol_oi, 2)}×` : f.DASH),
      h("td", { class: "num" }, f.compact(u.premium, "$")),
      h("td", { class: "num", title: u.zscore_missing || null }, isNum(u.zscore) ? f.num(u.zscore, 1) : f.DASH))))));
}

function renderAlerts(v, data) {
  if (data instanceof Error) {
    v.ctx.fail(v.alerts.body, data, "Couldn't load the alerts");
    return;
  }
  const alerts = data.alerts || [];
  v.alerts.sub.textContent = `${data.total_count ?? alerts.length} total`;
  if (!alerts.length) {
    replace(v.alerts.body, note(`No alerts for ${v.ticker} yet.`));
    return;
  }
  replace(v.alerts.body, h("div", { class: "alert-list" }, alerts.map((a) => h("details", { class: "alert-item" },
    h("summary", {}, scorePill(a.score), detectorChip(a.detector_name), f.time(a.created_at, "muted"),
      h("span", { class: "alert-summary" }, a.explanation?.summary ?? "")),
    alertDetail(a)))));
}
