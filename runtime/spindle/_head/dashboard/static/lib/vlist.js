// A virtual list of table rows: only the rows in view (plus a margin) exist in the DOM, so 10,000 rows
// scroll as fast as 50. Rows have one fixed height; the spacer keeps the scrollbar honest.

import { h, clear } from "./dom.js";

export class VirtualTable {
  constructor(container, columns, { rowHeight = 30, caption = "" } = {}) {
    this.columns = columns; this.rowHeight = rowHeight; this.rows = [];
    this.scroller = h("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": caption });
    this.table = h("table", { "aria-rowcount": 0 },
      h("caption", { class: "sr-only" }, caption),
      h("thead", {}, h("tr", { "aria-rowindex": 1 }, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.title)))));
    this.body = h("tbody");
    this.table.append(this.body);
    this.scroller.append(this.table);
    container.append(this.scroller);
    this.scroller.addEventListener("scroll", () => this.render(), { passive: true });
  }

  setRows(rows) { this.rows = rows; this.table.setAttribute("aria-rowcount", rows.length + 1); this.render(); }

  render() {
    const view = this.scroller.clientHeight || 500;
    const first = Math.max(0, Math.floor(this.scroller.scrollTop / this.rowHeight) - 10);
    const count = Math.ceil(view / this.rowHeight) + 20;
    const last = Math.min(this.rows.length, first + count);
    clear(this.body);
    const cols = this.columns.length;
    if (!this.rows.length) { this.body.append(h("tr", {}, h("td", { colspan: cols, class: "empty" }, "No rows."))); return; }
    if (first > 0) this.body.append(h("tr", { "aria-hidden": "true", style: `height:${first * this.rowHeight}px` }, h("td", { colspan: cols })));
    for (let i = first; i < last; i++) {
      const r = this.rows[i];
      this.body.append(h("tr", { "aria-rowindex": i + 2, style: `height:${this.rowHeight}px` },
        this.columns.map((c) => h("td", { class: c.num ? "num" : null }, c.cell(r)))));
    }
    const rest = this.rows.length - last;
    if (rest > 0) this.body.append(h("tr", { "aria-hidden": "true", style: `height:${rest * this.rowHeight}px` }, h("td", { colspan: cols })));
  }
}
