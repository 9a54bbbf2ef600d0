// Hand-drawn SVG charts: one small function per chart, sharing a frame with axes and a grid.
import { s } from "./dom.js";
import { compact, num, pct } from "./format.js";

const M = { l: 46, r: 12, t: 14, b: 26 };

/** Chart size for a container ``width`` px wide: drawn 1:1 so text stays readable on a phone. */
function size(width) {
  const w = Math.round(Math.max(300, Math.min(720, width || 560)));
  return { w, h: Math.round(Math.max(200, Math.min(250, w * 0.42))) };
}

function scale([d0, d1], [r0, r1]) {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return (v) => r0 + (v - d0) * k;
}

function extent(values, pad = 0.06) {
  const finite = values.filter(Number.isFinite);
  if (!finite.length) return [0, 1];
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  if (lo === hi) [lo, hi] = [lo - Math.abs(lo || 1) * 0.05, hi + Math.abs(hi || 1) * 0.05];
  const p = (hi - lo) * pad;
  return [lo - p, hi + p];
}

function ticks([lo, hi], count = 5) {
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const err = raw / mag;
  const step = mag * (err >= 7.5 ? 10 : err >= 3.5 ? 5 : err >= 1.5 ? 2 : 1);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toFixed(10)));
  return out;
}

/** An empty chart: grid, y labels, x labels; returns the svg and its scales. */
function frame({ x, y, xTicks, yTicks, xFmt, yFmt, label, data, width }) {
  const { w: W, h: H } = size(width);
  const sx = scale(x, [M.l, W - M.r]);
  const sy = scale(y, [H - M.b, M.t]);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": label, dataset: data });
  const grid = s("g", { class: "grid" });
  for (const t of yTicks ?? ticks(y)) {
    grid.append(
      s("line", { x1: M.l, x2: W - M.r, y1: sy(t), y2: sy(t) }),
      s("text", { x: M.l - 6, y: sy(t) + 4, class: "tick", "text-anchor": "end" }, yFmt(t)),
    );
  }
  for (const t of xTicks ?? ticks(x, Math.max(3, Math.round(W / 95)))) {
    grid.append(s("text", { x: sx(t), y: H - M.b + 17, class: "tick", "text-anchor": "middle" }, xFmt(t)));
  }
  grid.append(s("line", { x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b, class: "axis" }));
  svg.append(s("title", {}, label), grid);
  return { svg, sx, sy, W, H };
}

function vmark({ svg, sx, W, H, labelsLow }, value, text, cls, row = 0) {
  if (!Number.isFinite(value)) return;
  const x = sx(value);
  if (x < M.l || x > W - M.r) return;
  const anchor = x > W - 90 ? "end" : "start";
  const dx = anchor === "end" ? -4 : 4;
  svg.append(
    s("line", { x1: x, x2: x, y1: M.t, y2: H - M.b, class: `mark ${cls}` }),
    s("text", { x: x + dx, y: labelsLow ? H - M.b - 6 - row * 12 : M.t + 10 + row * 12, class: `mark-label ${cls}`, "text-anchor": anchor }, text),
  );
}

function line(points, cls) {
  const d = points.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join("");
  return s("path", { d, class: `line ${cls}` });
}

const strikeFmt = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));

/** IV vs strike: exactly one point per strike (a hollow mark on the axis where no IV is quoted). */
export function smileChart(points, spot, expiration, width) {
  const quoted = points.filter((p) => Number.isFinite(p.iv));
  const c = frame({
    x: extent(points.map((p) => p.strike), 0.02),
    y: extent(quoted.map((p) => p.iv), 0.08),
    xFmt: strikeFmt,
    yFmt: (v) => pct(v, 0),
    label: `Volatility smile, ${expiration}`,
    data: { smileFor: expiration },
    width,
  });
  vmark(c, spot, `spot ${num(spot)}`, "spot");
  c.svg.append(line(quoted.map((p) => [c.sx(p.strike), c.sy(p.iv)]), "smile"));
  const dots = s("g", { class: "dots" });
  for (const p of points) {
    const has = Number.isFinite(p.iv);
    const tip = `${p.strike} ${p.side === "C" ? "call" : "put"}: ${has ? pct(p.iv) : "no IV quoted"}`;
    dots.append(
      s("circle", {
        cx: c.sx(p.strike).toFixed(1),
        cy: (has ? c.sy(p.iv) : c.H - M.b).toFixed(1),
        r: has ? 2.4 : 2,
        class: has ? `pt ${p.side === "C" ? "call" : "put"}` : "pt missing",
        "data-smile-point": "",
        "data-strike": p.strike,
      }, s("title", {}, tip)),
    );
  }
  c.svg.append(dots);
  return c.svg;
}

/** ATM IV vs days to expiry. */
export function termChart(rows, width) {
  const c = frame({
    x: extent(rows.map((r) => r.dte), 0.04),
    y: extent(rows.map((r) => r.atm_iv), 0.12),
    xFmt: (v) => `${v}d`,
    yFmt: (v) => pct(v, 1),
    label: "ATM implied volatility by expiry",
    width,
  });
  c.svg.append(line(rows.map((r) => [c.sx(r.dte), c.sy(r.atm_iv)]), "term"));
  for (const r of rows) {
    c.svg.append(s("circle", { cx: c.sx(r.dte), cy: c.sy(r.atm_iv), r: 3, class: "pt term" },
      s("title", {}, `${r.expiration} (${r.dte}d): ${pct(r.atm_iv)}`)));
  }
  return c.svg;
}

/** Net dealer gamma exposure per strike, with spot, max pain and the walls marked. */
export function gexChart(rows, marks, width) {
  const strikes = rows.map((r) => r.strike);
  const nets = rows.map((r) => r.net_gex);
  const [lo, hi] = [Math.min(0, ...nets), Math.max(0, ...nets)];
  const pad = (hi - lo || 1) * 0.12;
  const c = frame({
    x: extent(strikes, 0.03),
    y: hi > lo ? [lo < 0 ? lo - pad : 0, hi > 0 ? hi + pad : 0] : [-1, 1],
    xFmt: strikeFmt,
    yFmt: (v) => compact(v, "$"),
    label: "Gamma exposure by strike",
    width,
  });
  c.labelsLow = hi < -lo * 0.5; // bars mostly below zero: keep the labels off them
  const gaps = strikes.slice(1).map((k, i) => c.sx(k) - c.sx(strikes[i])).filter((g) => g > 0);
  const barW = Math.max(1, Math.min(14, (gaps.length ? Math.min(...gaps) : 10) * 0.75));
  const zero = c.sy(0);
  for (const r of rows) {
    const y = c.sy(r.net_gex);
    c.svg.append(s("rect", {
      x: (c.sx(r.strike) - barW / 2).toFixed(1), width: barW.toFixed(1),
      y: Math.min(y, zero).toFixed(1), height: Math.max(0.5, Math.abs(y - zero)).toFixed(1),
      class: r.net_gex >= 0 ? "bar pos" : "bar neg",
    }, s("title", {}, `${r.strike}: ${compact(r.net_gex, "$")} per 1% move`)));
  }
  vmark(c, marks.spot, `spot ${num(marks.spot)}`, "spot", 0);
  vmark(c, marks.max_pain, `max pain ${strikeFmt(marks.max_pain)}`, "pain", 1);
  vmark(c, marks.call_wall, `call wall ${strikeFmt(marks.call_wall)}`, "callwall", 2);
  vmark(c, marks.put_wall, `put wall ${strikeFmt(marks.put_wall)}`, "putwall", 3);
  return c.svg;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

function monthTicks([t0, t1]) {
  const out = [];
  const d = new Date(t0);
  d.setUTCDate(1);
  d.setUTCHours(0, 0, 0, 0);
  const months = (t1 - t0) / (30 * 86400000);
  const every = months > 14 ? 3 : months > 7 ? 2 : 1;
  while (d.getTime() <= t1) {
    d.setUTCMonth(d.getUTCMonth() + 1);
    if (d.getTime() <= t1 && d.getUTCMonth() % every === 0) out.push(d.getTime());
  }
  return out;
}

/** ATM IV over time, with the window's low and high marked. */
export function historyChart(rows, width) {
  const t = rows.map((r) => r.t);
  const x = [Math.min(...t), Math.max(...t)];
  const ivs = rows.map((r) => r.iv);
  const c = frame({
    x,
    y: extent(ivs, 0.1),
    xTicks: monthTicks(x),
    xFmt: (v) => { const d = new Date(v); return `${MONTHS[d.getUTCMonth()]} ${String(d.getUTCFullYear()).slice(2)}`; },
    yFmt: (v) => pct(v, 0),
    label: "ATM implied volatility history",
    width,
  });
  const lo = Math.min(...ivs);
  const hi = Math.max(...ivs);
  for (const [v, text] of [[lo, `low ${pct(lo)}`], [hi, `high ${pct(hi)}`]]) {
    c.svg.append(
      s("line", { x1: M.l, x2: c.W - M.r, y1: c.sy(v), y2: c.sy(v), class: "mark band" }),
      s("text", { x: c.W - M.r - 2, y: c.sy(v) - 3, class: "mark-label band", "text-anchor": "end" }, text),
    );
  }
  c.svg.append(line(rows.map((r) => [c.sx(r.t), c.sy(r.iv)]), "history"));
  const last = rows[rows.length - 1];
  c.svg.append(s("circle", { cx: c.sx(last.t), cy: c.sy(last.iv), r: 3.5, class: "pt last" },
    s("title", {}, `${new Date(last.t).toISOString().slice(0, 10)}: ${pct(last.iv)}`)));
  return c.svg;
}
