// Live line charts of a node's CPU and memory samples, drawn with the vendored uPlot (canvas, fast).
import uPlot from "../vendor/uplot/uPlot.esm.js";

function width(el) { return Math.max(260, Math.floor(el.clientWidth || 400)); }

// A chart of `series` ([{label, stroke, value: sample -> number}]) over samples [{t, ...}].
export class SampleChart {
  constructor(el, { title, series, yRange, format }) {
    this.el = el;
    this.series = series;
    const opts = {
      title, width: width(el), height: 150,
      scales: { x: { time: true }, y: yRange ? { range: yRange } : {} },
      axes: [{}, { values: (u, ticks) => ticks.map(format || ((v) => v)), size: 70 }],
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, fill: s.fill,
        value: (u, v) => (v === null || v === undefined ? "–" : (format || String)(v)) }))],
      legend: { live: true },
    };
    this.plot = new uPlot(opts, [[], ...series.map(() => [])], el);
    this.resize = () => this.plot.setSize({ width: width(el), height: 150 });
    window.addEventListener("resize", this.resize);
  }

  update(samples) {
    const xs = samples.map((s) => s.t);
    this.plot.setData([xs, ...this.series.map((s) => samples.map(s.value))]);
  }

  destroy() { window.removeEventListener("resize", this.resize); this.plot.destroy(); }
}
