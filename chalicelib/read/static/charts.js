// Interactive charts on uPlot (vendored, static/vendor/): crosshair with values, drag to zoom
// (double-click resets), legend buttons that show and hide series, axis titles with units.
// Each chart is a <figure>: the plot, then a legend that reads the values under the cursor.
import { h } from "./dom.js";
import { compact, DASH, MARKET_TZ, num, pct } from "./format.js";

const uPlot = window.uPlot;
const INK = "#aab4c3";
const GRID = "#1f2935";
const FONT = "11px system-ui, sans-serif";
const LABEL_FONT = "12px system-ui, sans-serif";
export const COLORS = {
  call: "#49c5e8", put: "#f08c6c", accent: "#5aa9ff", violet: "#b38cff", amber: "#e3a931",
  green: "#3fbf74", red: "#f0605a", spot: "#c9d1dc", muted: "#8894a6",
};

const LIVE = new WeakMap(); // container -> {u, resize}: the chart drawn there now

const strikeText = (v) => (isFinite(v) ? (Number.isInteger(v) ? String(v) : v.toFixed(1)) : DASH);
const pctText = (v) => (v === null || v === undefined ? DASH : pct(v));
const moneyText = (v) => (v === null || v === undefined ? DASH : `${compact(v, "$")} per 1 % move`);

function axis(label, values, extra = {}) {
  return {
    label, stroke: INK, font: FONT, labelFont: LABEL_FONT, labelSize: 18, values,
    grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID, width: 1, size: 4 }, ...extra,
  };
}

function sizeOf(el) {
  const width = Math.max(280, Math.floor(el.clientWidth || 560));
  return { width, height: Math.round(Math.max(220, Math.min(300, width * 0.5))) };
}

/** A y range that includes 0 (bars grow from it), padded by 8 %. */
function withZero(u, low, high) {
  const lo = Math.min(0, low ?? 0);
  const hi = Math.max(0, high ?? 0);
  const pad = (hi - lo) * 0.08 || 1;
  return [lo < 0 ? lo - pad : 0, hi > 0 ? hi + pad : 0];
}

/** Vertical marks (spot, walls, max pain …) with labels at the top, drawn on the canvas. */
function marksHook(marks) {
  return (u) => {
    const { ctx, bbox } = u;
    const ratio = uPlot.pxRatio;
    ctx.save();
    ctx.font = `600 ${Math.round(10 * ratio)}px system-ui, sans-serif`;
    ctx.setLineDash([4 * ratio, 3 * ratio]);
    marks.filter((m) => Number.isFinite(m.value)).forEach((m, row) => {
      const x = u.valToPos(m.value, "x", true);
      if (x < bbox.left || x > bbox.left + bbox.width) return;
      ctx.strokeStyle = m.color;
      ctx.fillStyle = m.color;
      ctx.lineWidth = ratio;
      ctx.beginPath();
      ctx.moveTo(x, bbox.top);
      ctx.lineTo(x, bbox.top + bbox.height);
      ctx.stroke();
      const right = x > bbox.left + bbox.width * 0.7;
      ctx.textAlign = right ? "right" : "left";
      ctx.fillText(m.label, x + (right ? -4 : 4) * ratio, bbox.top + (11 + 12 * row) * ratio);
    });
    ctx.restore();
  };
}

/**
 * A chart in ``container``: ``data`` is uPlot's [xs, ...ys]; ``series`` [{label, color, value,
 * kind: "line"|"points"|"bars"}]; ``x`` {label, value (text of an x), axis (tick texts), time};
 * ``y`` {label, axis}; ``marks`` vertical lines. Returns the uPlot instance.
 */
function chart(container, { name, data, series, x, y, marks = [] }) {
  const plot = h("div", { class: "plot", role: "img", "aria-label": name });
  const xOut = h("span", { class: "x-value", "data-x": "" }, x.idle ?? "hover for values");
  const buttons = series.map((s) => h("button", { type: "button", class: "series", "aria-pressed": String(s.show !== false), dataset: { series: s.label } },
    h("span", { class: "swatch", "aria-hidden": "true" }), `${s.label} `, h("output", { class: "val" }, DASH)));
  buttons.forEach((b, i) => { b.firstChild.style.background = series[i].color; });
  const legend = h("figcaption", { class: "chart-legend" }, xOut, buttons);
  const figure = h("figure", { class: "chart", dataset: { chart: name, points: data[0].length } }, plot, legend);
  const previous = LIVE.get(container);
  if (previous) { previous.resize.disconnect(); previous.u.destroy(); }
  container.replaceChildren(figure);

  const opts = {
    ...sizeOf(container),
    legend: { show: false },
    cursor: { drag: { x: true, y: false, setScale: true }, points: { size: 7 } },
    scales: { x: { time: Boolean(x.time) }, ...(y.zero ? { y: { range: withZero } } : {}) },
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), MARKET_TZ),
    series: [
      { label: x.label },
      ...series.map((s) => ({
        label: s.label,
        show: s.show !== false,
        stroke: s.paint ?? s.color,
        width: s.kind === "points" ? 0 : 1.6,
        fill: s.kind === "bars" ? s.paint ?? `${s.color}cc` : undefined,
        fillTo: s.kind === "bars" ? 0 : undefined,
        paths: s.kind === "bars" ? uPlot.paths.bars({ size: [0.7, 14] }) : s.kind === "points" ? () => null : undefined,
        points: { show: s.kind === "bars" ? false : s.points ?? true, size: s.kind === "points" ? 5 : 4, fill: s.color, stroke: s.color },
        spanGaps: s.kind !== "points",
      })),
    ],
    axes: [axis(x.label, x.axis), axis(y.label, y.axis, { size: 62 })],
    hooks: {
      draw: [marksHook(marks)],
      setCursor: [(u) => {
        const i = u.cursor.idx;
        xOut.textContent = i === null || i === undefined ? (x.idle ?? "hover for values") : x.value(u.data[0][i], i);
        series.forEach((s, k) => {
          const v = i === null || i === undefined ? null : u.data[k + 1][i];
          buttons[k].lastChild.textContent = v === null || v === undefined ? DASH : s.value(v, i);
        });
      }],
      setScale: [(u, key) => {
        if (key !== "x") return;
        figure.dataset.xMin = String(u.scales.x.min);
        figure.dataset.xMax = String(u.scales.x.max);
      }],
    },
  };
  const u = new uPlot(opts, data, plot);
  if (x.window && Number.isFinite(x.window[0]) && Number.isFinite(x.window[1])) u.setScale("x", { min: x.window[0], max: x.window[1] });
  buttons.forEach((b, k) => b.addEventListener("click", () => {
    const show = b.getAttribute("aria-pressed") !== "true";
    b.setAttribute("aria-pressed", String(show));
    u.setSeries(k + 1, { show });
  }));
  const resize = new ResizeObserver(() => {
    const next = sizeOf(container);
    if (figure.isConnected && Math.abs(next.width - u.width) > 8) u.setSize(next);
  });
  resize.observe(container);
  LIVE.set(container, { u, resize });
  return u;
}

/** IV against strike for one expiry: one x per strike; calls and puts as separate series. */
export function smileChart(container, rows, spot, expiration) {
  const side = (want, key) => rows.map((r) => (r.otm === want ? r[key] : null));
  return chart(container, {
    name: `Volatility smile, ${expiration}`,
    data: [rows.map((r) => r.strike), side("P", "putIv"), side("C", "callIv"), side("C", "putIv"), side("P", "callIv")],
    series: [
      { label: "OTM puts", color: COLORS.put, value: pctText, kind: "points" },
      { label: "OTM calls", color: COLORS.call, value: pctText, kind: "points" },
      { label: "ITM puts", color: "#b0664f", value: pctText, kind: "points", show: false },
      { label: "ITM calls", color: "#2f8aa3", value: pctText, kind: "points", show: false },
    ],
    x: { label: "Strike ($)", value: (v) => `strike ${strikeText(v)}` },
    y: { label: "Implied volatility", axis: (u, splits) => splits.map((v) => pct(v, 0)) },
    marks: [{ value: spot, label: `spot ${num(spot)}`, color: COLORS.spot }],
  });
}

/** ATM IV by days to expiry, the selected expiry marked. */
export function termChart(container, rows, selected) {
  const chosen = rows.find((r) => r.expiration === selected);
  return chart(container, {
    name: "ATM implied volatility by expiry",
    data: [rows.map((r) => r.dte), rows.map((r) => r.atm_iv)],
    series: [{ label: "ATM IV", color: COLORS.accent, value: pctText }],
    x: { label: "Days to expiry", value: (v, i) => `${rows[i].expiration} · ${v} d`, axis: (u, splits) => splits.map((v) => `${v}d`) },
    y: { label: "ATM implied volatility", axis: (u, splits) => splits.map((v) => pct(v, 1)) },
    marks: chosen ? [{ value: chosen.dte, label: `${chosen.expiration}`, color: COLORS.amber }] : [],
  });
}

/** Green above zero, red below: a gradient with a hard stop at the y axis's zero. */
function bySign(u) {
  const { top, height } = u.bbox;
  const gradient = u.ctx.createLinearGradient(0, top, 0, top + height);
  const zero = Math.min(1, Math.max(0, (u.valToPos(0, "y", true) - top) / (height || 1)));
  gradient.addColorStop(0, COLORS.green);
  gradient.addColorStop(zero, COLORS.green);
  gradient.addColorStop(zero, COLORS.red);
  gradient.addColorStop(1, COLORS.red);
  return gradient;
}

/** Spot ±10 %, widened to the marks (walls, max pain) that lie among the strikes. */
function gexWindow(rows, marks, spot) {
  if (!Number.isFinite(spot) || !rows.length) return null;
  const first = rows[0].strike;
  const last = rows[rows.length - 1].strike;
  const inside = marks.map((m) => m.value).filter((v) => Number.isFinite(v) && v >= first && v <= last);
  const lo = Math.min(spot * 0.9, ...inside);
  const hi = Math.max(spot * 1.1, ...inside);
  const pad = (hi - lo) * 0.03;
  return [Math.max(first, lo - pad), Math.min(last, hi + pad)];
}

/** Net dealer gamma exposure per strike as bars (calls' and puts' own as lines, off at
 * first), with spot, walls, zero gamma and max pain marked. */
export function gexChart(container, rows, marks, spot) {
  return chart(container, {
    name: "Gamma exposure by strike of the selected expiry",
    data: [rows.map((r) => r.strike), rows.map((r) => r.net_gex), rows.map((r) => r.call_gex), rows.map((r) => r.put_gex)],
    series: [
      { label: "Net GEX", color: COLORS.green, paint: bySign, value: moneyText, kind: "bars" },
      { label: "Call GEX", color: COLORS.call, value: moneyText, points: false, show: false },
      { label: "Put GEX", color: COLORS.put, value: moneyText, points: false, show: false },
    ],
    x: { label: "Strike ($)", value: (v) => `strike ${strikeText(v)}`, window: gexWindow(rows, marks, spot) },
    y: { label: "GEX ($ per 1 % move)", axis: (u, splits) => splits.map((v) => compact(v, "$")), zero: true },
    marks,
  });
}

/** Daily ATM IV (and HV20 where known) over time; drag to zoom, double-click to reset. */
export function historyChart(container, rows, dayText) {
  return chart(container, {
    name: "ATM implied volatility history",
    data: [rows.map((r) => r.t), rows.map((r) => r.iv), rows.map((r) => r.hv)],
    series: [
      { label: "ATM IV 30d", color: COLORS.violet, value: pctText, points: false },
      { label: "HV 20", color: COLORS.amber, value: pctText, points: false },
    ],
    x: { label: "Session (New York)", time: true, value: (v, i) => dayText(rows[i]) },
    y: { label: "Volatility (annualised)", axis: (u, splits) => splits.map((v) => pct(v, 0)) },
  });
}
