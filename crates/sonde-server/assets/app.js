// Sonde's dashboard: the trace tree and waterfall of a session, a node's detail, and
// live updates. Everything from a trace is put into the page as text (textContent),
// never as HTML.
"use strict";

(function () {
  const ROW = 26; // px, as .row in app.css
  const POLL_MS = 5000;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function island(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  // ---- detail ------------------------------------------------------------------

  const FOLD_CHARS = 1500;
  const FOLD_LINES = 25;

  function textBlock(text) {
    const lines = text.split("\n");
    if (text.length <= FOLD_CHARS && lines.length <= FOLD_LINES) {
      return el("pre", "text", text);
    }
    const d = el("details", "fold");
    const first = lines[0].slice(0, 120);
    d.appendChild(el("summary", null, first + " … (" + text.length.toLocaleString() + " characters, " + lines.length + " lines)"));
    d.appendChild(el("pre", "text", text));
    return d;
  }

  function jsonValue(value, depth) {
    if (value === null) return el("span", "j-null", "null");
    if (Array.isArray(value) || typeof value === "object") {
      const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
      const d = el("details", "json");
      d.open = depth < 2;
      d.appendChild(el("summary", null, Array.isArray(value) ? "[" + entries.length + " items]" : "{" + entries.length + " keys}"));
      for (const [k, v] of entries) {
        const line = el("div", "kv");
        line.appendChild(el("span", "j-key", k + ": "));
        line.appendChild(jsonValue(v, depth + 1));
        d.appendChild(line);
      }
      return d;
    }
    if (typeof value === "string") {
      return value.length > 200 || value.includes("\n") ? textBlock(value) : el("span", "j-str", JSON.stringify(value));
    }
    return el("span", "j-" + typeof value, String(value));
  }

  function renderDetail(target, node) {
    target.replaceChildren();
    if (!node) {
      target.appendChild(el("p", "empty", "Select a node to see its detail."));
      return;
    }
    const h = el("h2", node.error ? "err" : null, node.name || node.kind);
    target.appendChild(h);
    const dl = el("dl", "fields");
    for (const [k, v] of node.fields) {
      dl.appendChild(el("dt", null, k));
      const dd = el("dd", null, v);
      dd.dataset.field = k;
      if ((k === "error" || (k === "status" && v === "error")) && v) dd.className = "err";
      dl.appendChild(dd);
    }
    target.appendChild(dl);
    for (const b of node.blocks) {
      const s = el("section", "block");
      s.appendChild(el("h3", "role role-" + b.title.split(/[^a-z]/)[0], b.title));
      if (b.text !== undefined) s.appendChild(textBlock(b.text));
      if (b.json !== undefined) s.appendChild(jsonValue(b.json, 0));
      target.appendChild(s);
    }
  }

  // ---- tree and waterfall ---------------------------------------------------------

  function trace(root) {
    const rows = document.getElementById("rows");
    const spacer = document.getElementById("spacer");
    const detail = document.getElementById("detail");
    let nodes = island("nodes") || [];
    let selected = -1;
    let span = 1;
    let drawn = [];

    function measure() {
      span = Math.max(1, ...nodes.map((n) => n.at + (n.dur || 0)));
      spacer.style.height = nodes.length * ROW + "px";
    }

    function row(i) {
      const n = nodes[i];
      const r = el("div", "row kind-" + n.kind + (n.error ? " err" : "") + (i === selected ? " selected" : ""));
      r.style.top = i * ROW + "px";
      r.dataset.index = i;
      r.dataset.id = n.id;
      const label = el("span", "label");
      label.style.paddingLeft = 6 + n.depth * 14 + "px";
      label.appendChild(el("span", "badge", n.kind));
      label.appendChild(el("span", "name", n.name));
      r.appendChild(label);
      const lane = el("span", "lane");
      const bar = el("span", "bar");
      bar.style.left = (100 * n.at) / span + "%";
      bar.style.width = Math.max(0.3, (100 * (n.dur || 0)) / span) + "%";
      lane.appendChild(bar);
      r.appendChild(lane);
      return r;
    }

    function draw() {
      const first = Math.max(0, Math.floor(rows.scrollTop / ROW) - 10);
      const last = Math.min(nodes.length, first + Math.ceil(rows.clientHeight / ROW) + 20);
      for (const d of drawn) d.remove();
      drawn = [];
      const frag = document.createDocumentFragment();
      for (let i = first; i < last; i++) {
        const r = row(i);
        drawn.push(r);
        frag.appendChild(r);
      }
      rows.appendChild(frag);
    }

    function select(i, scroll) {
      if (i < 0 || i >= nodes.length) return;
      selected = i;
      renderDetail(detail, nodes[i]);
      history.replaceState(null, "", "#n=" + encodeURIComponent(nodes[i].id));
      if (scroll) {
        const top = i * ROW;
        if (top < rows.scrollTop) rows.scrollTop = top;
        else if (top + ROW > rows.scrollTop + rows.clientHeight) rows.scrollTop = top + ROW - rows.clientHeight;
      }
      draw();
    }

    let pending = false;
    rows.addEventListener("scroll", () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        draw();
      });
    });
    rows.addEventListener("click", (e) => {
      const r = e.target.closest(".row");
      if (r) select(Number(r.dataset.index), false);
    });
    document.addEventListener("keydown", (e) => {
      if (e.target.closest("input, select, textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === "j") select(Math.min(nodes.length - 1, selected + 1), true);
      else if (e.key === "k") select(Math.max(0, selected - 1), true);
    });

    measure();
    const wanted = decodeURIComponent((location.hash.match(/^#n=(.*)$/) || [])[1] || "");
    const at = nodes.findIndex((n) => n.id === wanted);
    if (at >= 0) select(at, true);
    else draw();
    // When the tree is ready to use (BENCHMARKS.md reads it).
    performance.mark("sonde-trace-ready");

    // Live: new records of the session appear without a reload.
    const url = "/sessions/" + encodeURIComponent(root.dataset.session) + "/nodes.json";
    setInterval(async () => {
      if (document.hidden) return;
      try {
        const response = await fetch(url, { credentials: "same-origin" });
        if (!response.ok) return;
        const fresh = await response.json();
        if (JSON.stringify(fresh.map((n) => [n.id, n.dur, n.error])) === JSON.stringify(nodes.map((n) => [n.id, n.dur, n.error]))) return;
        const id = selected >= 0 ? nodes[selected].id : null;
        nodes = fresh;
        selected = id === null ? -1 : nodes.findIndex((n) => n.id === id);
        measure();
        draw();
        if (selected >= 0) renderDetail(detail, nodes[selected]);
      } catch (_) {
        // The server may be restarting: try again at the next tick.
      }
    }, POLL_MS);
  }

  // ---- live sessions list ---------------------------------------------------------

  function liveList(table) {
    setInterval(async () => {
      if (document.hidden) return;
      try {
        const response = await fetch(location.href, { credentials: "same-origin" });
        if (!response.ok) return;
        const doc = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = doc.querySelector("#" + table.id + " tbody");
        const current = table.querySelector("tbody");
        if (fresh && current && fresh.innerHTML !== current.innerHTML) {
          current.replaceWith(document.adoptNode(fresh));
        }
      } catch (_) {
        // Try again at the next tick.
      }
    }, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("trace");
    if (root) trace(root);
    const call = document.getElementById("call");
    if (call) renderDetail(document.getElementById("detail"), island("node"));
    const live = document.querySelector("table[data-live]");
    if (live) liveList(live);
  });
})();
