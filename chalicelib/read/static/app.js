// The dashboard: header (provider, market clock, quotes and export ages), alerts, watchlist,
// scans, alert delivery and the ticker view. It polls /health every 10 s (ETag, so an
// unchanged export costs a 304) and re-fetches the views when a new generation appears.
import { askForKey, getJSON, hasKey, HttpError } from "./api.js";
import { alertDetail, detectorChip, scorePill } from "./alerts.js";
import { loadCatalogue } from "./catalogue.js";
import { $, h, note, replace } from "./dom.js";
import * as f from "./format.js";
import { showTicker } from "./ticker.js";

const POLL_MS = 10000;
const NEVER = Symbol("never loaded"); // no generation, not even "none yet" (null)
const state = {
  health: null, healthAt: 0, generation: undefined, failed: false,
  sources: new Map(), // view -> source of its last response (latest | archive | none)
  loaded: { overview: NEVER, ticker: NEVER }, // generation each view last loaded
  sort: "newest", expanded: new Set(), detectors: new Set(), tickers: [], said: null,
};
const PROVIDERS = {
  synthetic: ["SYNTHETIC", "Invented prices from the synthetic market: not real quotes, not for trading."],
  file: ["FILE REPLAY", "Historic quotes replayed from imported end-of-day files."],
  yfinance: ["LIVE", "Live quotes from Yahoo Finance (delayed by the exchange's rules)."],
};

// ---- announcements: changes only -------------------------------------------------------------
function announce(text) {
  const region = $("#announcer");
  region.textContent = "";
  setTimeout(() => { region.textContent = text; }, 50); // a fresh node is read even if equal
}

/** Say what changed in the market or the export's state (never the ticking ages). */
function announceChanges(previousGeneration) {
  const hl = state.health;
  const said = `${statusOf(hl)}|${hl?.market?.state ?? ""}|${hl?.market?.quotes_overdue ?? ""}|${hl?.provider ?? ""}`;
  const parts = [];
  if (state.said !== null && said !== state.said) {
    parts.push(`${marketText(hl).label}.`, `Export ${STATUS[statusOf(hl)][0]}.`);
    if (hl?.market?.quotes_overdue) parts.push("Quotes overdue.");
  }
  if (previousGeneration !== undefined && hl?.generation && hl.generation !== previousGeneration) {
    parts.push(`New data published: generation ${hl.generation}.`);
  }
  state.said = said;
  if (parts.length) announce(parts.join(" "));
}

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

const waiting = () => state.health?.status === "empty";
const WAITING = "Waiting for the first export: run `python scripts/ocd.py cycle`, or wait for the schedule.";

// ---- header ----------------------------------------------------------------------------------
function renderSource() {
  const badge = $("#source-badge");
  const sources = [...state.sources.values()];
  const none = !state.health || state.health.source === "none";
  const source = none ? "none" : sources.includes("archive") ? "archive" : "latest";
  badge.dataset.source = source;
  badge.hidden = source !== "archive"; // only a fallback is news; "no data" says the provider badge
  badge.textContent = { latest: "latest", archive: "archive fallback", none: "no data" }[source];
  badge.title = {
    latest: "served from the latest export",
    archive: "a latest document was missing or damaged: served from its archived copy",
    none: "nothing has been exported yet",
  }[source];
}

function elapsed() {
  return (performance.now() - state.healthAt) / 1000;
}

const STATUS = {
  ok: ["ok", "the last export is recent and succeeded"],
  stale: ["stale", "no recent export: check that the scheduled export runs"],
  degraded: ["degraded", "served, but the writer's last export or collect failed"],
  empty: ["empty", "nothing has been exported yet"],
  "": ["…", ""],
};

function statusOf(hl) {
  if (!hl) return "";
  const seconds = typeof hl.age_seconds === "number" ? hl.age_seconds + elapsed() : null;
  if (hl.status === "ok" && seconds !== null && seconds > hl.stale_after_seconds) return "stale";
  return STATUS[hl.status] ? hl.status : "";
}

function marketText(hl) {
  const m = hl?.market;
  if (!m) return { key: "", label: "Market clock unknown", title: "the export carries no market clock" };
  if (m.state === "closed") {
    return { key: "closed", label: "Market closed", title: `Between sessions: the ${m.session} close is the newest quote there is. Next open ${f.when(m.next_open)}.` };
  }
  if (m.state === "open") {
    return m.quotes_overdue
      ? { key: "overdue", label: "Quotes overdue", title: `The market is open and newer quotes are due (session ${m.session}).` }
      : { key: "open", label: "Market open", title: `Session ${m.session}, closes ${f.when(m.closes_at)}.` };
  }
  return { key: "unknown", label: "Session missed", title: `A whole session came and went without a quote: the last quotes are of ${m.session}.` };
}

function tick() {
  const hl = state.health;
  const seconds = hl && typeof hl.age_seconds === "number" ? hl.age_seconds + elapsed() : null;
  $("#age").textContent = state.failed ? "API unreachable, retrying…" : seconds !== null ? f.ago(seconds) : hl ? "none yet" : "connecting…";
  const m = hl?.market;
  $("#quotes-age").textContent = m && typeof m.quotes_age_seconds === "number" ? f.ago(m.quotes_age_seconds + elapsed()) : "";
  const status = statusOf(hl);
  const badge = $("#status-badge");
  badge.dataset.status = status;
  badge.textContent = `export ${STATUS[status][0]}`;
  badge.title = hl?.status_reason ? `${STATUS[status][1]}: ${hl.status_reason}` : STATUS[status][1];
  $("#key-button").hidden = !hasKey();
}

function renderBanner() {
  const hl = state.health;
  const status = statusOf(hl);
  const banner = $("#stale-banner");
  const overdue = Boolean(hl?.market?.quotes_overdue);
  banner.hidden = !(status === "stale" || status === "empty" || status === "degraded" || overdue);
  const reason = hl?.status_reason ? ` (${hl.status_reason})` : "";
  if (status === "empty") banner.textContent = `Nothing has been exported yet. ${WAITING.replace("Waiting for the first export: ", "To start: ")}`;
  else if (status === "stale") banner.textContent = `Stale data: no export for longer than ${f.ago(hl.stale_after_seconds).replace(" ago", "")}${reason}. Check that the scheduled export is running.`;
  else if (status === "degraded") banner.textContent = `Degraded: the data is served, but the writer is failing${reason}.`;
  else if (overdue) {
    const why = hl.market.state === "open" ? "the market is open and newer quotes are due" : "a whole session has passed since them";
    banner.textContent = `Quotes overdue: these are from ${f.when(hl.market.quotes_as_of)} and ${why}${reason}.`;
  }
}

function renderHealth() {
  const hl = state.health;
  const [name, title] = PROVIDERS[hl?.provider] ?? ["NO DATA", "no export yet, so no provider"];
  const provider = $("#provider-badge");
  provider.dataset.provider = hl?.provider ?? "";
  provider.textContent = name;
  provider.title = title;
  const market = marketText(hl);
  const mb = $("#market-badge");
  mb.dataset.market = market.key;
  mb.textContent = market.label;
  mb.title = market.title;
  const q = hl?.market?.quotes_as_of;
  replace($("#quotes-time"), q ? f.time(q) : f.DASH);
  const gen = $("#generation");
  gen.textContent = hl?.generation ?? "—";
  gen.dataset.generation = hl?.generation ?? "";
  replace($("#export-time"), hl?.generated_at ? f.time(hl.generated_at) : f.DASH);
  const chips = Object.entries(hl?.exports || {}).map(([kind, r]) =>
    h("span", { class: `export ${r.ok === false ? "bad" : ""}`, title: r.error || `${kind}: ${r.keys_written ?? 0} written, ${r.keys_skipped ?? 0} unchanged` },
      h("b", {}, kind), ` ${f.int(r.rows)} rows · ${f.bytes(r.bytes)} · ${f.ms(r.duration_ms)}`));
  replace($("#exports"),
    hl?.export_duration_ms !== undefined ? h("span", { class: "export total" }, h("b", {}, "export"), ` ${f.ms(hl.export_duration_ms)}`) : null,
    chips);
  renderSource();
  renderBanner();
  renderDelivery();
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
    const previous = state.generation;
    announceChanges(previous);
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

// ---- alert delivery (from /health.delivery, once the writer delivers alerts) --------------------
/** Sinks of the delivery section, whatever its exact shape: a list, or an object by name. */
function sinksOf(delivery) {
  if (!delivery || typeof delivery !== "object") return null;
  let raw = delivery.sinks ?? delivery;
  if (!Array.isArray(raw)) raw = Object.entries(raw).filter(([, s]) => s && typeof s === "object").map(([name, s]) => ({ name, ...s }));
  const errorOf = (e) => (e && typeof e === "object" ? e.message ?? e.error ?? JSON.stringify(e) : e ?? null);
  return raw.map((s) => ({
    name: s.name ?? s.sink ?? "sink",
    lastSuccess: s.last_success_at ?? s.last_success ?? s.last_ok_at ?? null,
    backlog: s.backlog ?? s.pending ?? null,
    dead: s.dead ?? s.dead_count ?? s.dead_letters ?? null,
    lastError: errorOf(s.last_error),
    lastErrorAt: s.last_error_at ?? s.last_error?.at ?? null,
  }));
}

function renderDelivery() {
  const body = $("#delivery-body");
  const sinks = sinksOf(state.health?.delivery);
  if (!state.health) {
    replace(body, note("Loading…"));
    return;
  }
  if (!sinks || !sinks.length) {
    $("#delivery-count").textContent = "";
    replace(body, note("No delivery configured: alerts are shown here only."));
    return;
  }
  $("#delivery-count").textContent = `${sinks.length} sink${sinks.length === 1 ? "" : "s"}`;
  replace(body, h("div", { class: "table-wrap" }, h("table", { class: "data", id: "delivery-table" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Sink"), h("th", { scope: "col" }, "Last success"),
      h("th", { scope: "col", class: "num" }, "Backlog"), h("th", { scope: "col", class: "num" }, "Dead"), h("th", { scope: "col" }, "Last error"))),
    h("tbody", {}, sinks.map((s) => h("tr", { dataset: { sink: s.name } },
      h("td", {}, h("code", {}, s.name)),
      h("td", {}, s.lastSuccess ? f.time(s.lastSuccess) : "never"),
      h("td", { class: "num" }, f.int(s.backlog)),
      h("td", { class: `num${s.dead ? " bad" : ""}` }, f.int(s.dead)),
      h("td", { class: "error-text" }, s.lastError ? [s.lastErrorAt ? [f.time(s.lastErrorAt), " "] : null, s.lastError] : "none")))))));
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

function alertRows(alert, index) {
  const open = state.expanded.has(alert.id);
  const detailId = `alert-detail-${index}`;
  const toggle = () => {
    if (state.expanded.has(alert.id)) state.expanded.delete(alert.id);
    else state.expanded.add(alert.id);
    renderAlerts(alert.id);
  };
  const button = h("button", {
    type: "button", class: "expand", "aria-expanded": String(open), "aria-controls": open ? detailId : null,
    "aria-label": `${open ? "Hide" : "Show"} details: ${alert.ticker} ${alert.detector_name}, score ${alert.score}`,
    dataset: { alertButton: alert.id },
  }, open ? "▾" : "▸");
  button.addEventListener("click", (e) => { e.stopPropagation(); toggle(); });
  const tickerLink = h("a", { href: `#/t/${encodeURIComponent(alert.ticker)}`, class: "ticker" }, alert.ticker);
  tickerLink.addEventListener("click", (e) => e.stopPropagation());
  const row = h("tr", { class: `alert-row${open ? " open" : ""}`, dataset: { alertId: alert.id, detector: alert.detector_name } },
    h("td", { class: "chev" }, button),
    h("td", { class: "time" }, f.time(alert.created_at)),
    h("td", { class: "ticker-cell" }, tickerLink),
    h("td", { class: "detector" }, detectorChip(alert.detector_name)),
    h("td", { class: "num score-cell" }, scorePill(alert.score)),
    h("td", { class: "summary" }, alert.explanation?.summary ?? ""));
  row.addEventListener("click", toggle); // the whole row for the mouse; the button for keys
  if (!open) return [row];
  return [row, h("tr", { class: "detail-row", id: detailId }, h("td", { colspan: 6 }, alertDetail(alert)))];
}

let alertData = null;

function renderAlerts(focusId = null) {
  const body = $("#alerts-body");
  const list = alertData?.alerts || [];
  replace(body, sorted(list).map(alertRows));
  if (focusId !== null) body.querySelector(`button[data-alert-button="${CSS.escape(focusId)}"]`)?.focus();
  const active = Object.values(filters()).some((v) => v !== "");
  $("#alerts-count").textContent = alertData ? `${list.length} shown · ${alertData.total_count ?? list.length} match` : "";
  replace($("#alerts-note"), !alertData ? note("Loading…")
    : list.length ? null
      : note(waiting() ? WAITING : active ? "No alerts match these filters." : "No alerts yet: detectors run with each collect, and their alerts show up here after the next export."));
  const th = $("#sort-score").parentElement;
  th.setAttribute("aria-sort", { newest: "none", desc: "descending", asc: "ascending" }[state.sort]);
  $("#sort-score").textContent = { newest: "Score", desc: "Score ▼", asc: "Score ▲" }[state.sort];
}

// An alert's own link (#/alerts/ID: the url every delivered alert carries): the overview with
// that alert's details open, scrolled to and focused; a note when it is not among those shown.
function linkedAlert() {
  const m = /^#\/alerts\/([^/]+)$/.exec(location.hash);
  return m ? decodeURIComponent(m[1]) : null;
}

let revealed = null; // once per visit of the link: a new export must not scroll the page again

function revealLinkedAlert() {
  const id = linkedAlert();
  if (id === null || id === revealed || !alertData) return;
  const found = (alertData.alerts || []).some((a) => a.id === id);
  if (found) {
    revealed = id;
    state.expanded.add(id);
    renderAlerts(id);
    $("#alerts-body").querySelector(`tr[data-alert-id="${CSS.escape(id)}"]`)?.scrollIntoView({ block: "center" });
  } else {
    const active = Object.values(filters()).some((v) => v !== "");
    replace($("#alerts-note"), note(`Alert ${id} is not among the alerts shown${active ? ": clear the filters to look for it" : ": it may be older than the newest 500, or no longer published"}.`));
  }
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
    revealLinkedAlert();
    table.dataset.state = "ready";
  } catch (err) {
    if (token !== alertSeq) return;
    alertData = { alerts: [], total_count: 0 };
    renderAlerts();
    if (!waiting()) fail($("#alerts-note"), err, "Couldn't load the alerts");
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

// ---- watchlist, search and scans -------------------------------------------------------------
function rankBar(rank) {
  if (typeof rank !== "number") return f.DASH;
  const bar = h("span", { class: "meter", "aria-hidden": "true" }, h("span", { class: "fill" }));
  bar.firstChild.style.width = `${Math.max(0, Math.min(100, rank))}%`;
  return h("span", { class: "rank", title: f.value("iv_rank", rank) }, bar, rank.toFixed(0));
}

function change(v) {
  if (!f.isNum(v)) return h("span", { class: "change" }, f.DASH);
  return h("span", { class: "change", dataset: { sign: v > 0 ? "up" : v < 0 ? "down" : "flat" } }, f.signedPct(v));
}

function openTicker(ticker) {
  location.hash = `#/t/${encodeURIComponent(ticker)}`;
}

function filterWatchlist() {
  const query = $("#ticker-input").value.trim().toUpperCase();
  let shown = 0;
  for (const row of $("#watchlist-body").rows) {
    const hit = !query || row.dataset.ticker.includes(query);
    row.hidden = !hit;
    shown += hit ? 1 : 0;
  }
  if (state.tickers.length) {
    replace($("#watchlist-note"), shown ? null : note(`No watchlist ticker matches “${query}”: press Enter to look it up anyway.`));
  }
}

async function loadWatchlist() {
  if (waiting()) {
    replace($("#watchlist-body"));
    replace($("#watchlist-note"), note(WAITING));
    return;
  }
  try {
    const data = track("tickers")(await getJSON("tickers"));
    state.tickers = data.tickers || [];
    setOptions($("#filter-ticker"), state.tickers.map((t) => t.ticker));
    replace($("#ticker-options"), state.tickers.map((t) => h("option", { value: t.ticker })));
    $("#watchlist-count").textContent = `${state.tickers.length} tickers`;
    replace($("#watchlist-body"), state.tickers.map((t) => {
      const link = h("a", { href: `#/t/${encodeURIComponent(t.ticker)}`, class: "ticker" }, t.ticker);
      const row = h("tr", { class: "ticker-row", dataset: { ticker: t.ticker } },
        h("th", { scope: "row" }, link),
        h("td", { class: "num" }, f.num(t.last_price)),
        h("td", { class: "num", title: "since the previous close" }, change(t.change_pct)),
        h("td", { class: "num" }, f.pct(t.atm_iv)),
        h("td", { class: "num" }, rankBar(t.iv_rank)),
        h("td", { class: "num earnings-cell", title: t.next_earnings ? f.day(t.next_earnings) : "no earnings date in the calendar" },
          t.next_earnings ? t.next_earnings.slice(5) : f.DASH),
        h("td", { class: "num" }, t.alert_count ? h("span", { class: "count" }, f.int(t.alert_count)) : f.int(t.alert_count ?? null)));
      row.addEventListener("click", (e) => { if (e.target !== link) openTicker(t.ticker); }); // the link is the one tab stop
      return row;
    }));
    replace($("#watchlist-note"), state.tickers.length ? null : note("No tickers exported yet."));
    filterWatchlist();
  } catch (err) {
    replace($("#watchlist-body"));
    fail($("#watchlist-note"), err, "Couldn't load the watchlist");
  }
}

function searchTicker(event) {
  event.preventDefault();
  const query = $("#ticker-input").value.trim().toUpperCase();
  if (!query) return;
  const known = state.tickers.map((t) => t.ticker);
  const matches = known.filter((t) => t.includes(query));
  const target = known.includes(query) ? query : matches.length === 1 ? matches[0] : query;
  $("#ticker-input").value = "";
  filterWatchlist();
  openTicker(target);
}

async function loadScans() {
  if (waiting()) {
    replace($("#scans-body"));
    replace($("#scans-note"), note(WAITING));
    return;
  }
  try {
    const data = track("scans")(await getJSON("scans/latest", { limit: 10 }));
    const scans = data.scans || [];
    $("#scans-count").textContent = `${scans.length} of ${data.total_count ?? scans.length}`;
    replace($("#scans-body"), scans.map((s) => h("tr", {},
      h("td", {}, f.time(s.started_at)),
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

// ---- routing: #/ (overview), #/alerts/ID (the overview, that alert open) and #/t/TICKER[/YYYY-MM-DD]
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
    if (waiting()) replace(view, h("div", { class: "ticker-head" }, h("a", { href: "#/", class: "back" }, "← Overview"), h("h2", {}, target.ticker)), note(WAITING));
    else showTicker(view, target.ticker, target.expiration, tickerCtx);
  } else {
    document.title = "Option Chain Dashboard";
    if (state.loaded.overview !== state.generation) loadOverview();
    else revealLinkedAlert();
  }
}

function reloadAll() {
  state.loaded.overview = NEVER;
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
  $("#ticker-search").addEventListener("submit", searchTicker);
  $("#ticker-input").addEventListener("input", filterWatchlist);
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
    revealed = null;
    const now = parseHash()?.ticker ?? null;
    route();
    if (now !== shown) window.scrollTo(0, 0); // a new page, not a new expiry
    shown = now;
  });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) pollHealth(); });
}

wire();
loadCatalogue().finally(() => {
  pollHealth();
  setInterval(pollHealth, POLL_MS);
  setInterval(tick, 1000);
});
