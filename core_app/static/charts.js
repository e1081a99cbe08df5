// Two small charts as inline SVG built with DOM calls (no library, no markup strings): bars of a count over
// time, and a line of a score in [-1, 1] over the messages of a conversation. Colours come from app.css.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 320;
const HEIGHT = 180;
const MARGIN = { top: 12, right: 10, bottom: 30, left: 32 };
const MAX_X_LABELS = 8;
const MAX_BAR_WIDTH = 40;

function node(name, attributes = {}, content = undefined) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (content !== undefined) element.textContent = content;
  return element;
}

function frame(title, className) {
  const svg = node("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": title,
    class: `chart ${className}` });
  svg.append(node("title", {}, title));
  return svg;
}

const plot = {
  left: MARGIN.left,
  right: WIDTH - MARGIN.right,
  top: MARGIN.top,
  bottom: HEIGHT - MARGIN.bottom,
  get width() { return this.right - this.left; },
  get height() { return this.bottom - this.top; },
};

function gridLine(svg, y, label, className = "grid") {
  svg.append(node("line", { x1: plot.left, x2: plot.right, y1: y, y2: y, class: className }));
  svg.append(node("text", { x: plot.left - 6, y: y + 4, "text-anchor": "end", class: "tick" }, label));
}

function xLabel(svg, x, label) {
  svg.append(node("text", { x, y: plot.bottom + 18, "text-anchor": "middle", class: "tick" }, label));
}

/**
 * Bars, one per point, left to right.
 * @param {string} title what the chart shows (its accessible name)
 * @param {{label: string, value: number, detail: string}[]} points
 */
export function barChart(title, points) {
  const svg = frame(title, "bars");
  const top = Math.max(1, ...points.map((point) => point.value));
  const y = (value) => plot.bottom - (value / top) * plot.height;
  gridLine(svg, y(0), "0");
  gridLine(svg, y(top), String(top));
  if (top >= 4) gridLine(svg, y(Math.round(top / 2)), String(Math.round(top / 2)));
  const band = plot.width / Math.max(1, points.length);
  const every = Math.ceil(points.length / MAX_X_LABELS);
  points.forEach((point, index) => {
    const x = plot.left + index * band;
    const width = Math.max(1, Math.min(MAX_BAR_WIDTH, band * 0.7));
    const bar = node("rect", { x: x + (band - width) / 2, y: y(point.value), width,
      height: plot.bottom - y(point.value), class: "bar" });
    bar.append(node("title", {}, point.detail));
    svg.append(bar);
    if (index % every === 0) xLabel(svg, x + band / 2, point.label);
  });
  return svg;
}

/**
 * A line through scores in [-1, 1], one point per message, in order.
 * @param {string} title what the chart shows (its accessible name)
 * @param {{x: number, value: number, detail: string}[]} points x is the message's sequence
 */
export function lineChart(title, points) {
  const svg = frame(title, "line");
  const y = (value) => plot.top + ((1 - value) / 2) * plot.height;
  gridLine(svg, y(1), "+1");
  gridLine(svg, y(0), "0", "grid zero");
  gridLine(svg, y(-1), "−1");
  if (points.length === 0) return svg;
  const first = points[0].x;
  const last = points[points.length - 1].x;
  const x = (value) => (last === first ? plot.left + plot.width / 2
    : plot.left + ((value - first) / (last - first)) * plot.width);
  svg.append(node("polyline", { points: points.map((p) => `${x(p.x)},${y(p.value)}`).join(" "), class: "path" }));
  for (const point of points) {
    const dot = node("circle", { cx: x(point.x), cy: y(point.value), r: 3, class: "dot" });
    dot.append(node("title", {}, point.detail));
    svg.append(dot);
  }
  xLabel(svg, x(first), `#${first}`);
  if (last !== first) xLabel(svg, x(last), `#${last}`);
  return svg;
}
