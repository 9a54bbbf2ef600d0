// The ticker view: option chain of one expiry, smile, term structure, GEX, IV history, features.
import { getJSON, pool } from "./api.js";
import { alertDetail, detectorChip, scorePill, valueColumns } from "./alerts.js";
import { gexChart, historyChart, smileChart, termChart } from "./charts.js";
import { h, note, replace } from "./dom.js";
import * as f from "./format.js";

const NEAR = 15; // strikes either side of the ATM strike shown until "show all"
const GEX_WINDOW = 0.15; // client-side GEX: strikes within ±15 % of spot
const UNUSUAL_MIN_VOLUME = 50;
const SIDE_COLUMNS = ["open_interest", "volume", "implied_volatility", "delta", "bid", "ask"];
const PHONE_COLUMNS = ["volume", "implied_volatility", "bid", "ask"];
const PHONE = matchMedia("(max-width: 600px)");
const HEAD = { open_interest: "OI", volume: "Vol", implied_volatility: "IV", delta: "Δ", bid: "Bid", ask: "Ask" };
const FEATURE_ORDER = [
  "underlying_price", "atm_iv", "iv_rank", "iv_percentile", "atm_iv_front", "atm_iv_back", "term_slope",
  "hv_10", "hv_20", "hv_60", "iv_hv_ratio", "skew_25d", "skew_25d_zscore", "butterfly_25d",
  "expected_move", "max_pain", "call_wall", "put_wall", "gex_total", "put_call_volume_ratio",
  "put_call_oi_ratio", "spread_pct", "unusual_count", "sma_50", "sma_200",
];
const SHOWN_ELSEWHERE = new Set(["term_structure", "gex_by_strike", "max_pain_by_expiry", "unusual_contracts", "sma_recent"]);

let view = null;
let seq = 0;
const termCache = new Map(); // "TICKER|generation" -> computed term structure rows
const isNum = (v) => typeof v === "number" && Number.isFinite(v);
const enc = encodeURIComponent;

function card(title, cls = "") {
  const sub = h("span", { class: "sub" });
  const body = h("div", { class: "card-body" }, note("Loading…"));
  const el = h("section", { class: `card ${cls}` }, h("header", { class: "card-head" }, h("h3", {}, title), sub), body);
  return { el, sub, body };
}

function build(root, ticker, ctx) {
  const select = h("select", { id: "expiry-select", "aria-label": "Expiration" });
  select.addEventListener("change", () => ctx.navigate(ticker, select.value));
  const v = {
    ticker, root, ctx, select, showAll: false, expiration: null, expirations: [],
    title: h("h2", {}, ticker), spot: h("span", { class: "spot" }), asOf: h("span", { class: "muted" }),
    kpis: h("div", { class: "kpis" }),
    smile: card("Volatility smile"), term: card("Term structure"), gex: card("Gamma exposure by strike"),
    history: card("IV history"), chain: card("Option chain"), features: card("Key features"),
    alerts: card("Alerts"),
  };
  replace(root,
    h("div", { class: "ticker-head" },
      h("a", { href: "#/", class: "back" }, "← Overview"), v.title, v.spot, v.asOf,
      h("label", { class: "expiry" }, "Expiry ", select)),
    v.kpis,
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
    const exp = chooseExpiry(exps.expirations || [], wanted, v.expiration, exps.as_of);
    fillSelect(v, exps.expirations || [], exps.as_of, exp);
    if (!exp) {
      replace(v.chain.body, note("This ticker has no listed expirations in the export."));
      return;
    }
    const snap = ctx.track(await getJSON(`${base}/snapshot`, { expiration: exp }));
    if (!live()) return;
    const fx = feats instanceof Error ? null : feats.features || null;
    const rows = hist instanceof Error ? [] : hist.history || [];
    v.expiration = exp;
    const local = localNumbers(snap);
    v.last = { snap, fx, rows, hist, local };
    renderHead(v, snap);
    renderKpis(v, fx, rows, local);
    renderSized(v);
    renderFeatures(v, feats);
    renderAlerts(v, alerts);
    root.dataset.expiration = exp;
    await renderTerm(v, fx, exps, snap, live);
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
    replace(v.select, list.map((e) => h("option", { value: e }, `${e} · ${f.dte(e, asOf)}d`)));
  }
  if (exp) v.select.value = exp;
}

function renderHead(v, snap) {
  v.spot.textContent = f.num(snap.underlying_price);
  v.asOf.textContent = `as of ${f.when(snap.as_of)} UTC`;
}

// ---- derived numbers -------------------------------------------------------------------------
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

function atmIndex(rows, spot) {
  let best = 0;
  rows.forEach((r, i) => { if (Math.abs(r.strike - spot) < Math.abs(rows[best].strike - spot)) best = i; });
  return best;
}

/** ATM IV of one expiry: the mean call/put IV at the quoted strike nearest spot. */
function atmIv(snap) {
  const spot = snap.underlying_price;
  let best = null;
  for (const r of byStrike(snap)) {
    const ivs = [r.C?.implied_volatility, r.P?.implied_volatility].filter(isNum);
    if (ivs.length === 2 && (!best || Math.abs(r.strike - spot) < Math.abs(best.strike - spot))) {
      best = { strike: r.strike, iv: (ivs[0] + ivs[1]) / 2 };
    }
  }
  return best ? best.iv : null;
}

/** IV rank and percentile of the latest day against the past year of daily ATM IV. */
function historyStats(rows) {
  const ivs = rows.map((r) => r.atm_iv).filter(isNum);
  if (ivs.length < 20) return null;
  const current = ivs[ivs.length - 1];
  const past = ivs.slice(-253, -1);
  const lo = Math.min(...past, current);
  const hi = Math.max(...past, current);
  return {
    rank: hi > lo ? (100 * (current - lo)) / (hi - lo) : null,
    percentile: (100 * past.filter((x) => x < current).length) / past.length,
    days: past.length,
  };
}

function maxPain(rows) {
  let best = null;
  for (const { strike: p } of rows) {
    let pain = 0;
    for (const r of rows) {
      pain += (r.C?.open_interest || 0) * Math.max(p - r.strike, 0) + (r.P?.open_interest || 0) * Math.max(r.strike - p, 0);
    }
    if (!best || pain < best.pain) best = { strike: p, pain };
  }
  return best?.strike ?? null;
}

function gexRows(rows, spot) {
  const g = (r, sign) => (isNum(r?.gamma) && isNum(r?.open_interest) ? sign * r.gamma * r.open_interest * 100 * spot * spot * 0.01 : 0);
  return rows
    .filter((r) => Math.abs(r.strike / spot - 1) <= GEX_WINDOW)
    .map((r) => ({ strike: r.strike, call_gex: g(r.C, 1), put_gex: g(r.P, -1) }))
    .map((r) => ({ ...r, net_gex: r.call_gex + r.put_gex }));
}

function extremeStrike(rows, key, pick) {
  let best = null;
  for (const r of rows) if (r[key] !== 0 && (!best || pick(r[key], best[key]))) best = r;
  return best?.strike ?? null;
}

/** What the browser can work out from the chosen expiry alone, for when features are missing. */
function localNumbers(snap) {
  const spot = snap.underlying_price;
  const rows = byStrike(snap);
  const gex = isNum(spot) ? gexRows(rows, spot) : [];
  const iv = atmIv(snap);
  const days = f.dte(snap.expiration, snap.as_of);
  return {
    rows, gex, atmIv: iv, dte: days,
    move: isNum(iv) && isNum(spot) && days > 0 ? spot * iv * Math.sqrt(days / 365) : null,
    maxPain: maxPain(rows),
    callWall: extremeStrike(gex, "call_gex", (a, b) => a > b),
    putWall: extremeStrike(gex, "put_gex", (a, b) => a < b),
  };
}

const widthOf = (c) => c.body.clientWidth;

/** The parts drawn for the screen's width: charts 1:1, fewer chain columns on a phone. */
function renderSized(v) {
  const { snap, fx, rows, hist, local } = v.last;
  v.width = v.root.clientWidth;
  renderSmile(v, snap);
  renderChain(v, snap, fx);
  renderGex(v, snap, fx, local);
  renderHistory(v, fx, rows, hist);
  if (v.termRows) replace(v.term.body, termChart(v.termRows, widthOf(v.term)));
}

let resizeTimer = 0;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    if (view?.last && !view.root.hidden && Math.abs(view.root.clientWidth - view.width) > 40) renderSized(view);
  }, 200);
});

// ---- sections --------------------------------------------------------------------------------
function kpi(name, value, hint) {
  return h("div", { class: "kpi", title: hint || null }, h("span", { class: "kpi-label" }, name), h("span", { class: "kpi-value" }, value));
}

/** A feature when published, else the browser's estimate marked "≈" (with a tooltip saying so). */
function either(fx, key, estimate, format, why) {
  if (isNum(fx?.[key]) || (fx?.[key] && typeof fx[key] === "object")) return [f.feature(key, fx[key]), null];
  if (estimate === null || estimate === undefined || (typeof estimate === "number" && !isNum(estimate))) return [f.DASH, fx?.[key] === null ? "not computable" : null];
  return [`≈${format(estimate)}`, `estimated in the browser from ${why} (the feature is not published yet)`];
}

function renderKpis(v, fx, rows, local) {
  const stats = historyStats(rows);
  const last = rows[rows.length - 1] || {};
  const exp = `the ${v.expiration} chain`;
  const move = isNum(fx?.expected_move?.sigma_move) ? [`±${f.num(fx.expected_move.sigma_move)}`, f.expectedMove(fx.expected_move)]
    : either(null, "expected_move", local.move, (m) => `±${f.num(m)}`, `${exp}'s ATM IV`);
  replace(v.kpis,
    kpi("ATM IV", ...either(fx, "atm_iv", local.atmIv, (x) => f.pct(x), exp)),
    kpi("IV rank", ...either(fx, "iv_rank", stats?.rank, (x) => x.toFixed(0), "the daily IV history")),
    kpi("IV pct", ...either(fx, "iv_percentile", stats?.percentile, (x) => x.toFixed(0), "the daily IV history")),
    kpi("Exp. move", ...move),
    kpi("Max pain", ...either(fx, "max_pain", local.maxPain, (x) => f.num(x), exp)),
    kpi("Call wall", ...either(fx, "call_wall", local.callWall, (x) => f.num(x), exp)),
    kpi("Put wall", ...either(fx, "put_wall", local.putWall, (x) => f.num(x), exp)),
    kpi("P/C volume", f.feature("put_call_volume_ratio", fx?.put_call_volume_ratio ?? last.put_call_volume_ratio)));
}

function renderSmile(v, snap) {
  const spot = snap.underlying_price;
  const points = byStrike(snap).map((r) => {
    const [first, second] = r.strike >= spot ? ["C", "P"] : ["P", "C"];
    const side = isNum(r[first]?.implied_volatility) ? first : isNum(r[second]?.implied_volatility) ? second : first;
    return { strike: r.strike, side, iv: r[side]?.implied_volatility ?? null };
  });
  replace(v.smile.sub, `${snap.expiration} · ${points.length} strikes · `, h("span", { class: "key put" }, "● puts"),
    " below spot, ", h("span", { class: "key call" }, "● calls"), " above");
  replace(v.smile.body, points.length ? smileChart(points, spot, snap.expiration, widthOf(v.smile)) : note("No contracts for this expiry."));
}

function renderTerm(v, fx, exps, snap, live) {
  const listed = Array.isArray(fx?.term_structure) ? fx.term_structure.filter((r) => isNum(r.atm_iv)) : [];
  if (listed.length >= 2) {
    v.term.sub.textContent = `${listed.length} expiries · features`;
    v.termRows = listed;
    replace(v.term.body, termChart(listed, widthOf(v.term)));
    return Promise.resolve();
  }
  return computeTerm(v, exps, snap, live);
}

async function computeTerm(v, exps, snap, live) {
  const key = `${v.ticker}|${snap.generation}`;
  let rows = termCache.get(key);
  if (!rows) {
    const list = exps.expirations || [];
    v.term.sub.textContent = `computing from ${list.length} snapshots…`;
    const snaps = await pool(list, 4, (e) => (e === snap.expiration ? snap : getJSON(`options/${enc(v.ticker)}/snapshot`, { expiration: e })));
    rows = list
      .map((e, i) => ({ expiration: e, dte: f.dte(e, exps.as_of), atm_iv: snaps[i] instanceof Error ? null : atmIv(snaps[i]) }))
      .filter((r) => isNum(r.atm_iv));
    termCache.set(key, rows);
    if (termCache.size > 24) termCache.delete(termCache.keys().next().value);
  }
  if (!live()) return;
  v.term.sub.textContent = `${rows.length} expiries · ATM IV from each snapshot (computed in the browser)`;
  v.termRows = rows.length >= 2 ? rows : null;
  replace(v.term.body, rows.length >= 2 ? termChart(rows, widthOf(v.term)) : note("Not enough expiries with quoted ATM IV."));
}

function renderGex(v, snap, fx, local) {
  const spot = snap.underlying_price;
  if (Array.isArray(fx?.gex_by_strike) && fx.gex_by_strike.length) {
    const pain = (fx.max_pain_by_expiry || []).find((r) => r.expiration === snap.expiration)?.strike;
    v.gex.sub.textContent = `all expiries · net $ per 1% move · features${pain !== undefined ? ` · max pain of ${snap.expiration}` : ""}`;
    replace(v.gex.body, gexChart(fx.gex_by_strike, { spot, max_pain: pain ?? fx.max_pain, call_wall: fx.call_wall, put_wall: fx.put_wall }, widthOf(v.gex)));
    return;
  }
  if (!local.gex.some((r) => r.net_gex !== 0)) {
    v.gex.sub.textContent = "";
    replace(v.gex.body, note("No gamma or open interest for this expiry: GEX is not available."));
    return;
  }
  v.gex.sub.textContent = `${snap.expiration} only · computed in the browser (features not published yet)`;
  replace(v.gex.body, gexChart(local.gex, { spot, max_pain: local.maxPain, call_wall: local.callWall, put_wall: local.putWall }, widthOf(v.gex)));
}

function renderHistory(v, fx, rows, hist) {
  const points = rows.filter((r) => isNum(r.atm_iv)).map((r) => ({ t: Date.parse(r.as_of), iv: r.atm_iv })).filter((p) => Number.isFinite(p.t));
  if (points.length < 2) {
    v.history.sub.textContent = "";
    replace(v.history.body, note(hist instanceof Error ? `Couldn't load the history: ${hist.message}` : "No IV history yet."));
    return;
  }
  const stats = historyStats(rows);
  const rank = isNum(fx?.iv_rank) ? `IV rank ${fx.iv_rank.toFixed(0)} · IV percentile ${isNum(fx.iv_percentile) ? fx.iv_percentile.toFixed(0) : f.DASH} (features)`
    : stats?.rank != null ? `IV rank ≈${stats.rank.toFixed(0)} · percentile ≈${stats.percentile.toFixed(0)} over ${stats.days} days` : "";
  v.history.sub.textContent = `${points.length} days · ${rank}`;
  replace(v.history.body, historyChart(points, widthOf(v.history)));
}

function unusualKeys(fx) {
  const keys = new Set();
  for (const u of Array.isArray(fx?.unusual_contracts) ? fx.unusual_contracts : []) keys.add(`${u.expiration}|${u.strike}|${u.right}`);
  return keys;
}

function sideCells(row, side, spot, listed, expiration, columns) {
  const cols = side === "C" ? columns : [...columns].reverse();
  const itm = row && (side === "C" ? row.strike < spot : row.strike > spot);
  return cols.map((col) => {
    const value = row?.[col];
    const cls = ["num", side === "C" ? "call" : "put", itm ? "itm" : ""];
    let text = value === null || value === undefined ? f.DASH
      : col === "implied_volatility" ? f.pct(value) : col === "delta" ? f.num(value, 2)
        : col === "volume" || col === "open_interest" ? f.int(value) : f.num(value);
    let title = null;
    if (col === "volume" && row) {
      const ratio = (row.volume || 0) / Math.max(row.open_interest || 0, 1);
      const isListed = listed.has(`${expiration}|${row.strike}|${side}`);
      if (isListed || (ratio >= 1 && row.volume >= UNUSUAL_MIN_VOLUME)) {
        cls.push("unusual");
        text = `⚑ ${text}`;
        title = `unusual: volume ${f.int(row.volume)} vs open interest ${f.int(row.open_interest)} (${ratio.toFixed(2)}×)${isListed ? " · listed by features" : ""}`;
      }
    }
    return h("td", { class: cls.join(" "), title }, text);
  });
}

function renderChain(v, snap, fx) {
  const spot = snap.underlying_price;
  const rows = byStrike(snap);
  if (!rows.length) {
    replace(v.chain.body, note("No contracts for this expiry."));
    return;
  }
  const atm = atmIndex(rows, spot);
  const shown = v.showAll ? rows : rows.slice(Math.max(0, atm - NEAR), atm + NEAR + 1);
  const listed = unusualKeys(fx);
  const cols = PHONE.matches ? PHONE_COLUMNS : SIDE_COLUMNS;
  const toggle = h("button", { type: "button", class: "link" }, v.showAll ? `Show ${2 * NEAR + 1} strikes near the money` : `Show all ${rows.length} strikes`);
  toggle.addEventListener("click", () => { v.showAll = !v.showAll; renderChain(v, snap, fx); });
  v.chain.sub.textContent = `${snap.expiration} · ${f.dte(snap.expiration, snap.as_of)} days · ${rows.length} strikes · ${(snap.calls || []).length + (snap.puts || []).length} contracts`;
  const head = h("thead", {},
    h("tr", { class: "sides" }, h("th", { colspan: cols.length, class: "call" }, "Calls"), h("th", {}), h("th", { colspan: cols.length, class: "put" }, "Puts")),
    h("tr", {}, cols.map((c) => h("th", { class: "num" }, HEAD[c])), h("th", { class: "strike" }, "Strike"),
      [...cols].reverse().map((c) => h("th", { class: "num" }, HEAD[c]))));
  const body = h("tbody", {}, shown.map((r) => h("tr", { class: r === rows[atm] ? "atm" : null, dataset: { strike: r.strike, atm: r === rows[atm] ? "true" : null } },
    sideCells(r.C, "C", spot, listed, snap.expiration, cols),
    h("td", { class: "strike" }, f.num(r.strike, Number.isInteger(r.strike) ? 0 : 1)),
    sideCells(r.P, "P", spot, listed, snap.expiration, cols))));
  const wrap = h("div", { class: "table-wrap" }, h("table", { class: "chain", id: "chain-table" }, head, body));
  replace(v.chain.body,
    h("div", { class: "chain-tools" },
      h("span", { class: "legend" }, h("span", { class: "swatch atm" }), "ATM strike ", h("span", { class: "swatch itm" }), "in the money ", h("span", { class: "flag" }, "⚑"), " volume ≥ open interest"),
      toggle),
    wrap);
  wrap.scrollLeft = (wrap.scrollWidth - wrap.clientWidth) / 2; // strikes in view on a phone
}

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
  const keys = [...FEATURE_ORDER.filter((k) => k in fx), ...Object.keys(fx).filter((k) => !FEATURE_ORDER.includes(k) && !SHOWN_ELSEWHERE.has(k)).sort()];
  const values = Object.fromEntries(keys.map((k) => [k, fx[k]]));
  v.features.sub.textContent = `as of ${f.when(feats.as_of)}`;
  const unusual = Array.isArray(fx.unusual_contracts) ? fx.unusual_contracts : [];
  replace(v.features.body, valueColumns(values, feats.missing || {}), unusual.length ? unusualTable(unusual) : null);
}

function unusualTable(rows) {
  return h("div", { class: "table-wrap" }, h("h4", {}, "Unusual contracts"), h("table", { class: "data" },
    h("thead", {}, h("tr", {}, ["Expiry", "Strike", "", "Vol", "OI", "Vol/OI", "z"].map((c) => h("th", { class: c === "Expiry" || !c ? null : "num" }, c)))),
    h("tbody", {}, rows.map((u) => h("tr", {},
      h("td", {}, u.expiration), h("td", { class: "num" }, f.num(u.strike)), h("td", {}, u.right),
      h("td", { class: "num" }, f.int(u.volume)), h("td", { class: "num" }, f.int(u.open_interest)),
      h("td", { class: "num" }, isNum(u.vol_oi) ? u.vol_oi.toFixed(2) : f.DASH),
      h("td", { class: "num", title: u.zscore_missing || null }, isNum(u.zscore) ? u.zscore.toFixed(1) : f.DASH))))));
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
    h("summary", {}, scorePill(a.score), detectorChip(a.detector_name), h("span", { class: "muted" }, f.when(a.created_at)),
      h("span", { class: "alert-summary" }, a.explanation?.summary ?? "")),
    alertDetail(a)))));
}
