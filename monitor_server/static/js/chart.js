// A small canvas line chart: a time window, one or more series, redrawn on an animation frame.

const PAD = { left: 46, right: 8, top: 8, bottom: 18 };

export class LineChart {
  constructor(canvas, { series, max = null, format = String }) {
    Object.assign(this, { canvas, series, max, format });
    this.points = [];   // [{t: ms, v: [value per series]}], oldest first
    this.from = 0;
    this.to = 1;
    this.frame = 0;
    new ResizeObserver(() => this.draw()).observe(canvas);
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
    if (!this.points.length) {
      ctx.fillStyle = "#5d6676";
      ctx.fillText("no samples in this range", PAD.left + 8, height / 2);
    }
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
    ctx.fillText(new Date(this.from).toLocaleTimeString(), PAD.left, height - 4);
    const end = new Date(this.to).toLocaleTimeString();
    ctx.fillText(end, width - PAD.right - ctx.measureText(end).width, height - 4);
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
}

function niceMax(points) {
  let max = 0;
  for (const p of points) for (const v of p.v) if (v != null && v > max) max = v;
  if (max <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(max));
  return Math.ceil(max / step) * step;
}
