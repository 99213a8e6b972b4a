// A small canvas line chart: a time window, one or more series, redrawn on an animation frame.
// Hovering (or touching) a chart draws a crosshair at the nearest point and shows its time and
// values in a readout beside it.
import { axisFormat, nearest, ticks } from "./format.js";

const PAD = { left: 52, right: 8, top: 8, bottom: 18 };

export class LineChart {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{series: {color: string, label?: string}[], max?: number | null, format?: (v: number) => string,
   *   valueFormat?: (v: number) => string}} options  format: the axis; valueFormat: the readout (default format)
   */
  constructor(canvas, { series, max = null, format = String, valueFormat = format }) {
    Object.assign(this, { canvas, series, max, format, valueFormat });
    this.points = [];   // [{t: ms, v: [value per series]}], oldest first
    this.from = 0;
    this.to = 1;
    this.frame = 0;
    this.hoverX = null;  // css px from the canvas' left edge, while the pointer is over it
    this.readout = document.createElement("div");
    this.readout.className = "chart-readout";
    this.readout.hidden = true;
    canvas.parentElement?.append(this.readout);
    canvas.addEventListener("pointermove", (e) => this.hover(e));
    canvas.addEventListener("pointerdown", (e) => this.hover(e));
    canvas.addEventListener("pointerleave", () => { this.hoverX = null; this.draw(); });
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  hover(event) {
    this.hoverX = event.clientX - this.canvas.getBoundingClientRect().left;
    this.draw();
  }

  setData(points, from, to) {
    this.points = points;
    this.setWindow(from, to);
  }

  setWindow(from, to) {
    this.from = from;
    this.to = to;
    const firstKept = this.points.findIndex((p) => p.t >= from);
    if (firstKept > 0) this.points.splice(0, firstKept);
    this.draw();
  }

  push(point) {
    const last = this.points[this.points.length - 1];
    if (last && point.t < last.t) return;  // replayed history shows up on the next range load
    this.points.push(point);
    this.draw();
  }

  draw() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.paint(); });
  }

  paint() {
    const { canvas } = this;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    if (!width || !height) return;
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    const top = this.max ?? niceMax(this.points);
    const x = (t) => PAD.left + ((t - this.from) / (this.to - this.from)) * (width - PAD.left - PAD.right);
    const y = (v) => PAD.top + (1 - v / top) * (height - PAD.top - PAD.bottom);
    this.grid(ctx, width, height, top, y);
    this.series.forEach((s, i) => this.line(ctx, x, y, i, s.color));
    if (!this.points.some((p) => p.v.some((v) => v != null))) {
      ctx.fillStyle = "#5d6676";
      ctx.fillText(this.points.length ? "not reported by this agent in this range" : "no samples in this range",
        PAD.left + 8, height / 2);
    }
    this.crosshair(ctx, width, height, x, y);
  }

  grid(ctx, width, height, top, y) {
    ctx.font = "11px system-ui, sans-serif";
    ctx.strokeStyle = "#e5e9f0";
    ctx.fillStyle = "#5d6676";
    for (const fraction of [0, 0.5, 1]) {
      const v = top * fraction;
      ctx.beginPath();
      ctx.moveTo(PAD.left, y(v));
      ctx.lineTo(width - PAD.right, y(v));
      ctx.stroke();
      ctx.fillText(this.format(v), 2, y(v) + 4);
    }
    const labels = new Intl.DateTimeFormat(undefined, axisFormat(this.to - this.from));
    const times = ticks(this.from, this.to, width >= 520 ? 5 : 3);
    const span = width - PAD.left - PAD.right;
    times.forEach((t, i) => {
      const text = labels.format(t);
      const w = ctx.measureText(text).width;
      const at = PAD.left + (span * i) / (times.length - 1);
      const left = i === 0 ? at : i === times.length - 1 ? at - w : at - w / 2;
      ctx.fillText(text, left, height - 4);
    });
  }

  line(ctx, x, y, index, color) {
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let drawing = false;
    for (const p of this.points) {
      const v = p.v[index];
      if (v == null) { drawing = false; continue; }
      if (drawing) ctx.lineTo(x(p.t), y(v)); else ctx.moveTo(x(p.t), y(v));
      drawing = true;
    }
    ctx.stroke();
  }

  // The point nearest the pointer: a vertical line, a dot per series, and the values in the readout.
  crosshair(ctx, width, height, x, y) {
    const span = width - PAD.left - PAD.right;
    const inside = this.hoverX != null && this.hoverX >= PAD.left && this.hoverX <= width - PAD.right;
    const index = inside ? nearest(this.points, this.from + ((this.hoverX - PAD.left) / span) * (this.to - this.from)) : -1;
    if (index < 0) { this.readout.hidden = true; return; }
    const point = this.points[index], px = x(point.t);
    ctx.strokeStyle = "#5d6676";
    ctx.lineWidth = 1;
    ctx.setLineDash([3, 3]);
    ctx.beginPath();
    ctx.moveTo(px, PAD.top);
    ctx.lineTo(px, height - PAD.bottom);
    ctx.stroke();
    ctx.setLineDash([]);
    this.series.forEach((s, i) => {
      const v = point.v[i];
      if (v == null) return;
      ctx.fillStyle = s.color;
      ctx.beginPath();
      ctx.arc(px, y(v), 3, 0, 2 * Math.PI);
      ctx.fill();
    });
    const when = document.createElement("time");
    when.dateTime = new Date(point.t).toISOString();
    when.textContent = new Date(point.t).toLocaleString();
    const rows = this.series.map((s, i) => {
      const row = document.createElement("div");
      const key = document.createElement("span");
      key.className = "swatch";
      key.style.background = s.color;
      const v = point.v[i];
      row.append(key, `${s.label ? `${s.label}: ` : ""}${v == null ? "–" : this.valueFormat(v)}`);
      return row;
    });
    this.readout.replaceChildren(when, ...rows);
    this.readout.hidden = false;
    // beside the line, on the side with more room
    const right = px < width / 2;
    this.readout.style.left = right ? `${px + 10}px` : "";
    this.readout.style.right = right ? "" : `${width - px + 10}px`;
  }
}

function niceMax(points) {
  let max = 0;
  for (const p of points) for (const v of p.v) if (v != null && v > max) max = v;
  if (max <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(max));
  return Math.ceil(max / step) * step;
}
