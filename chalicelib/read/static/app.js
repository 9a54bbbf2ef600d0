// The dashboard: freshness header, alerts, watchlist, scans and the ticker view; it polls
// /health every 10 s (ETag, so an unchanged export costs a 304) and re-fetches the views when a
// new generation appears.
import { askForKey, getJSON, hasKey, HttpError } from "./api.js";
import { alertDetail, detectorChip, scorePill } from "./alerts.js";
import { $, h, note, replace } from "./dom.js";
import * as f from "./format.js";
import { showTicker } from "./ticker.js";

const POLL_MS = 10000;
const state = {
  health: null, healthAt: 0, generation: undefined, failed: false,
  sources: new Map(), // view -> source of its last response (latest | archive | none)
  loaded: { overview: null, ticker: null }, // generation each view last loaded
  sort: "newest", expanded: new Set(), detectors: new Set(), tickers: [],
};

// ---- sources and errors ----------------------------------------------------------------------
function track(view) {
  return (data) => {
    if (data && typeof data.source === "string") state.sources.set(view, data.source);
    renderSource();
    return data;
  };
}

function fail(container, err, what) {
  if (err instanceof HttpError && err.status === 401) {
    const again = h("button", { type: "button", class: "link" }, "Enter API key");
    again.addEventListener("click", () => askForKey("This dashboard needs an API key.").then(reloadAll, () => {}));
    replace(container, h("p", { class: "note error" }, `${what}: an API key is needed. `, again));
    return;
  }
  const offline = err instanceof TypeError && /fetch|network/i.test(err.message);
  const why = err instanceof HttpError ? err.message : offline ? "the server did not answer" : String(err?.message ?? err);
  replace(container, note(`${what}: ${why}`, "error"));
  console.warn(what, err);
}

// ---- header ----------------------------------------------------------------------------------
function renderSource() {
  const badge = $("#source-badge");
  const sources = [...state.sources.values()];
  const none = !state.health || state.health.source === "none";
  const source = none ? "none" : sources.includes("archive") ? "archive" : "latest";
  badge.dataset.source = source;
  badge.textContent = { latest: "latest", archive: "archive fallback", none: "no data" }[source];
  badge.title = {
    latest: "served from the latest export",
    archive: "a latest document was missing or damaged: served from its archived copy",
    none: "nothing has been exported yet",
  }[source];
}

function age() {
  const hl = state.health;
  if (!hl || typeof hl.age_seconds !== "number") return null;
  return hl.age_seconds + (performance.now() - state.healthAt) / 1000;
}

function tick() {
  const seconds = age();
  const hl = state.health;
  $("#age").textContent = state.failed ? "API unreachable, retrying…" : hl && seconds !== null ? `updated ${f.ago(seconds)}` : hl ? "no export yet" : "connecting…";
  const stale = hl && (hl.status === "stale" || (seconds !== null && seconds > hl.stale_after_seconds));
  const status = !hl ? "" : hl.status === "empty" ? "empty" : stale ? "stale" : "ok";
  const badge = $("#status-badge");
  badge.dataset.status = status;
  badge.textContent = { ok: "fresh", stale: "stale", empty: "empty", "": "…" }[status];
  $("#key-button").hidden = !hasKey();
  const banner = $("#stale-banner");
  banner.hidden = status !== "stale" && status !== "empty";
  if (status === "stale") {
    banner.textContent = `Stale data: the last export finished ${f.ago(seconds)}, and data older than ${f.ago(hl.stale_after_seconds).replace(" ago", "")} counts as stale. Check that the scheduled export is running.`;
  } else if (status === "empty") {
    banner.textContent = "Nothing has been exported yet: run `python scripts/ocd.py cycle` (or wait for the schedule).";
  }
}

function renderHealth() {
  const hl = state.health;
  const gen = $("#generation");
  gen.textContent = hl?.generation ?? "—";
  gen.dataset.generation = hl?.generation ?? "";
  gen.title = hl?.generated_at ? `generated ${hl.generated_at}` : "";
  const chips = Object.entries(hl?.exports || {}).map(([kind, r]) =>
    h("span", { class: `export ${r.ok === false ? "bad" : ""}`, title: r.error || `${kind}: ${r.keys_written ?? 0} written, ${r.keys_skipped ?? 0} unchanged` },
      h("b", {}, kind), ` ${f.int(r.rows)} rows · ${f.bytes(r.bytes)} · ${f.ms(r.duration_ms)}`));
  replace($("#exports"),
    hl?.export_duration_ms !== undefined ? h("span", { class: "export total" }, h("b", {}, "export"), ` ${f.ms(hl.export_duration_ms)}`) : null,
    chips);
  renderSource();
  tick();
}

async function pollHealth() {
  if (document.hidden && state.health) return;
  try {
    const body = await getJSON("health");
    state.failed = false;
    if (body !== state.health) {
      state.health = body;
      state.healthAt = performance.now();
      renderHealth();
    }
    if (body.generation !== state.generation) {
      state.generation = body.generation;
      state.sources.clear();
      route();
    }
  } catch (err) {
    state.failed = true;
    tick();
    console.warn("health poll failed", err);
  }
}

// ---- alerts ----------------------------------------------------------------------------------
function filters() {
  const score = Number.parseFloat($("#filter-score").value);
  return {
    ticker: $("#filter-ticker").value,
    detector: $("#filter-detector").value,
    min_score: Number.isFinite(score) && score > 0 ? Math.min(score, 100) : "",
  };
}

function sorted(alerts) {
  if (state.sort === "newest") return alerts;
  const sign = state.sort === "desc" ? -1 : 1;
  return [...alerts].sort((a, b) => sign * ((a.score ?? -1) - (b.score ?? -1)));
}

function alertRows(alert) {
  const open = state.expanded.has(alert.id);
  const tickerLink = h("a", { href: `#/t/${encodeURIComponent(alert.ticker)}`, class: "ticker" }, alert.ticker);
  tickerLink.addEventListener("click", (e) => e.stopPropagation());
  const row = h("tr", { class: `alert-row${open ? " open" : ""}`, tabindex: 0, "aria-expanded": String(open), dataset: { alertId: alert.id, detector: alert.detector_name } },
    h("td", { class: "chev", "aria-hidden": "true" }, open ? "▾" : "▸"),
    h("td", { class: "time" }, f.when(alert.created_at)),
    h("td", { class: "ticker-cell" }, tickerLink),
    h("td", { class: "detector" }, detectorChip(alert.detector_name)),
    h("td", { class: "num score-cell" }, scorePill(alert.score)),
    h("td", { class: "summary" }, alert.explanation?.summary ?? ""));
  const toggle = () => {
    if (state.expanded.has(alert.id)) state.expanded.delete(alert.id);
    else state.expanded.add(alert.id);
    renderAlerts();
  };
  row.addEventListener("click", toggle);
  row.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(); } });
  if (!open) return [row];
  return [row, h("tr", { class: "detail-row" }, h("td", { colspan: 6 }, alertDetail(alert)))];
}

let alertData = null;

function renderAlerts() {
  const body = $("#alerts-body");
  const list = alertData?.alerts || [];
  replace(body, sorted(list).map(alertRows));
  const active = Object.values(filters()).some((v) => v !== "");
  $("#alerts-count").textContent = alertData ? `${list.length} shown · ${alertData.total_count ?? list.length} match` : "";
  replace($("#alerts-note"), !alertData ? note("Loading…")
    : list.length ? null
      : note(active ? "No alerts match these filters." : "No alerts yet: detectors run with each collect, and their alerts show up here after the next export."));
  const th = $("#sort-score").parentElement;
  th.setAttribute("aria-sort", { newest: "none", desc: "descending", asc: "ascending" }[state.sort]);
  $("#sort-score").textContent = { newest: "Score", desc: "Score ▼", asc: "Score ▲" }[state.sort];
}

let alertSeq = 0;
async function loadAlerts() {
  const token = ++alertSeq;
  const table = $("#alerts-table");
  table.dataset.state = "loading";
  try {
    const data = track("alerts")(await getJSON("alerts", { ...filters(), limit: 500 }));
    if (token !== alertSeq) return;
    alertData = data;
    renderAlerts();
    table.dataset.state = "ready";
  } catch (err) {
    if (token !== alertSeq) return;
    alertData = { alerts: [], total_count: 0 };
    renderAlerts();
    fail($("#alerts-note"), err, "Couldn't load the alerts");
    table.dataset.state = "error";
  }
}

function setOptions(select, values, labelOf = (v) => v) {
  const current = select.value;
  const all = [...new Set([...values, ...(current ? [current] : [])])].sort();
  replace(select, h("option", { value: "" }, "All"), all.map((v) => h("option", { value: v }, labelOf(v))));
  select.value = current;
}

async function loadDetectors() {
  try {
    const data = track("alerts")(await getJSON("alerts/latest/summary", { limit: 500 }));
    state.detectors = new Set((data.alerts || []).map((a) => a.detector_name).filter(Boolean));
    setOptions($("#filter-detector"), state.detectors);
  } catch (err) {
    console.warn("detector list", err);
  }
}

// ---- watchlist and scans ---------------------------------------------------------------------
function rankBar(rank) {
  if (typeof rank !== "number") return f.DASH;
  const bar = h("span", { class: "meter" }, h("span", { class: "fill" }));
  bar.firstChild.style.width = `${Math.max(0, Math.min(100, rank))}%`;
  return h("span", { class: "rank" }, bar, rank.toFixed(0));
}

async function loadWatchlist() {
  try {
    const data = track("tickers")(await getJSON("tickers"));
    state.tickers = data.tickers || [];
    setOptions($("#filter-ticker"), state.tickers.map((t) => t.ticker));
    $("#watchlist-count").textContent = `${state.tickers.length} tickers`;
    replace($("#watchlist-body"), state.tickers.map((t) => {
      const row = h("tr", { class: "ticker-row", tabindex: 0, dataset: { ticker: t.ticker } },
        h("td", {}, h("a", { href: `#/t/${encodeURIComponent(t.ticker)}`, class: "ticker" }, t.ticker)),
        h("td", { class: "num" }, f.num(t.last_price)),
        h("td", { class: "num" }, f.pct(t.atm_iv)),
        h("td", { class: "num" }, rankBar(t.iv_rank)),
        h("td", { class: "num" }, t.alert_count ? h("span", { class: "count" }, f.int(t.alert_count)) : "0"));
      const open = () => { location.hash = `#/t/${encodeURIComponent(t.ticker)}`; };
      row.addEventListener("click", open);
      row.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
      return row;
    }));
    replace($("#watchlist-note"), state.tickers.length ? null : note("No tickers exported yet."));
  } catch (err) {
    replace($("#watchlist-body"));
    fail($("#watchlist-note"), err, "Couldn't load the watchlist");
  }
}

async function loadScans() {
  try {
    const data = track("scans")(await getJSON("scans/latest", { limit: 10 }));
    const scans = data.scans || [];
    $("#scans-count").textContent = `${scans.length} of ${data.total_count ?? scans.length}`;
    replace($("#scans-body"), scans.map((s) => h("tr", {},
      h("td", { class: "time", title: s.scan_id }, f.when(s.started_at)),
      h("td", {}, h("span", { class: "status", dataset: { status: s.status } }, s.status ?? f.DASH)),
      h("td", { class: "num" }, f.int(s.tickers_scanned)),
      h("td", { class: "num" }, f.int(s.chains_collected)),
      h("td", { class: "num" }, f.int(s.alerts_generated)),
      h("td", { class: "num" }, f.duration(s.runtime_seconds)),
      h("td", { class: `num${s.errors?.length ? " bad" : ""}`, title: (s.errors || []).join("\n") || null }, f.int(s.errors?.length ?? 0)))));
    replace($("#scans-note"), scans.length ? null : note("No scans recorded yet."));
  } catch (err) {
    replace($("#scans-body"));
    fail($("#scans-note"), err, "Couldn't load the scans");
  }
}

function loadOverview() {
  state.loaded.overview = state.generation;
  return Promise.all([loadAlerts(), loadDetectors(), loadWatchlist(), loadScans()]);
}

// ---- routing: #/ (overview) and #/t/TICKER[/YYYY-MM-DD] ---------------------------------------
function parseHash() {
  const m = /^#\/t\/([^/]+)(?:\/(\d{4}-\d{2}-\d{2}))?$/.exec(location.hash);
  return m ? { ticker: decodeURIComponent(m[1]).toUpperCase(), expiration: m[2] || null } : null;
}

const tickerCtx = {
  track: track("ticker"),
  fail,
  navigate: (ticker, expiration) => { location.hash = `#/t/${encodeURIComponent(ticker)}/${expiration}`; },
};

function route() {
  if (state.generation === undefined) return; // the first health answer routes
  const target = parseHash();
  $("#overview").hidden = Boolean(target);
  const view = $("#ticker-view");
  view.hidden = !target;
  if (target) {
    document.title = `${target.ticker} · Option Chain Dashboard`;
    state.loaded.ticker = state.generation;
    showTicker(view, target.ticker, target.expiration, tickerCtx);
  } else {
    document.title = "Option Chain Dashboard";
    if (state.loaded.overview !== state.generation) loadOverview();
  }
}

function reloadAll() {
  state.loaded.overview = null;
  route();
}

// ---- start -----------------------------------------------------------------------------------
function debounce(fn, wait) {
  let timer = 0;
  return () => { clearTimeout(timer); timer = setTimeout(fn, wait); };
}

function wire() {
  $("#filter-ticker").addEventListener("change", loadAlerts);
  $("#filter-detector").addEventListener("change", loadAlerts);
  $("#filter-score").addEventListener("input", debounce(loadAlerts, 300));
  $("#alert-filters").addEventListener("reset", () => setTimeout(loadAlerts, 0));
  $("#alert-filters").addEventListener("submit", (e) => e.preventDefault());
  $("#sort-score").addEventListener("click", () => {
    state.sort = { newest: "desc", desc: "asc", asc: "newest" }[state.sort];
    renderAlerts();
  });
  $("[data-key-cancel]").addEventListener("click", () => $("#key-dialog").close(""));
  $("#key-button").addEventListener("click", () => {
    askForKey("Replace the stored API key:").then(reloadAll, () => {}).finally(tick);
  });
  let shown = parseHash()?.ticker ?? null;
  window.addEventListener("hashchange", () => {
    const now = parseHash()?.ticker ?? null;
    route();
    if (now !== shown) window.scrollTo(0, 0); // a new page, not a new expiry
    shown = now;
  });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) pollHealth(); });
}

wire();
pollHealth();
setInterval(pollHealth, POLL_MS);
setInterval(tick, 1000);
