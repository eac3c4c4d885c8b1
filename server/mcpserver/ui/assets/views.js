// TraceKit's views: one document per view (body[data-view]), fed a tool result either by an MCP Apps
// host over postMessage (ui/notifications/tool-result) or, on the web route, from the JSON embedded
// in #tk-data. It makes no network requests of its own.
(() => {
  "use strict";
  const META = "io.tracekit/view";
  const view = document.body.dataset.view;
  const app = document.getElementById("app");
  let host = null; // the Apps bridge, when embedded by a host

  const el = (tag, attrs, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v;
      else if (k === "style") e.style.cssText = v; // CSSOM, which the pages' CSP allows
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  };
  const SVG = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs, ...kids) => {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, v);
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  };
  const ms = (v) => v >= 1000 ? (v / 1000).toFixed(v >= 10000 ? 1 : 2) + " s" : (v >= 10 ? Math.round(v) : +(+v).toFixed(1)) + " ms";
  const usd = (v) => v === null || v === undefined ? "unknown" : "$" + (v >= 100 ? v.toFixed(0) : v.toFixed(2));
  const num = (v) => Intl.NumberFormat("en", { notation: v >= 1e5 ? "compact" : "standard" }).format(v);
  const t = (s) => new Date(s).getTime();
  const hhmm = (ms) => new Date(ms).toISOString().slice(11, 16);
  const span = (w) => w.from.slice(0, 16).replace("T", " ") + " – " + (w.to.slice(0, 10) === w.from.slice(0, 10) ? w.to.slice(11, 16) : w.to.slice(0, 16).replace("T", " ")) + " UTC";
  const str = (v) => typeof v === "string" ? v : JSON.stringify(v);

  function openLink(url) {
    return (ev) => {
      if (!host) return; // a normal link on the web route
      ev.preventDefault();
      host.request("ui/open-link", { url }).catch(() => {});
    };
  }
  function header(title, sub, meta) {
    const h = el("div", { class: "head" }, el("h1", { text: title }));
    const s = el("div", { class: "sub" });
    for (const [i, part] of sub.entries()) {
      if (i) s.append(" · ");
      s.append(part);
    }
    if (host && meta && meta.url) s.append(" · ", el("a", { href: meta.url, target: "_blank", rel: "noopener", onclick: openLink(meta.url), text: "open in browser" }));
    h.append(s);
    return h;
  }

  // ---- trace waterfall -------------------------------------------------------------------------
  const ROW = 22;
  function renderTrace(sc, meta) {
    const rows = sc.waterfall || [];
    const total = sc.duration_ms || 1;
    const errors = new Map((sc.errors || []).map((e) => [e.span_id, e]));
    // parent[i] is the row of the nearest shallower row before i; kids[i] counts its direct children.
    const n = rows.length, parent = new Int32Array(n), kids = new Int32Array(n), stack = [];
    for (let i = 0; i < n; i++) {
      while (stack.length && rows[stack[stack.length - 1]].depth >= rows[i].depth) stack.pop();
      parent[i] = stack.length ? stack[stack.length - 1] : -1;
      if (parent[i] >= 0) kids[parent[i]]++;
      stack.push(i);
    }
    const collapsed = new Uint8Array(n);
    let visible = [];
    const computeVisible = () => {
      visible = [];
      let skipDepth = -1;
      for (let i = 0; i < n; i++) {
        const d = rows[i].depth;
        if (skipDepth >= 0 && d > skipDepth) continue;
        skipDepth = collapsed[i] ? d : -1;
        visible.push(i);
      }
    };
    computeVisible();

    const crit = rows.filter((r) => r.critical).length;
    app.replaceChildren(
      header("Trace " + sc.trace_id, [el("b", { text: sc.root }), ms(total), num(sc.spans) + " spans",
        (sc.services || []).length + " services", sc.failed_spans ? el("span", { class: "chip warn", text: sc.failed_spans + " failed" }) : "no failures"], meta),
      el("div", { class: "legend" },
        el("span", {}, el("i", { style: "background:var(--crit)" }), "critical path (" + crit + " rows)"),
        el("span", {}, el("i", { style: "background:var(--self)" }), "self time"),
        el("span", {}, el("i", { style: "outline:2px solid var(--err)" }), "failed"),
        sc.truncated ? el("span", { text: "showing " + n + " rows; " + num(sc.omitted) + " spans summarised" }) : null),
    );
    const box = el("div", { id: "waterfall", role: "tree", tabindex: "0", "aria-label": "waterfall: arrows move, Enter opens or closes" });
    const spacer = el("div", { class: "spacer" });
    box.append(spacer);
    const detail = el("div", { id: "detail", text: "Click a span for its attributes." });
    app.append(box, detail);
    box.style.height = Math.min(Math.max(visible.length, 3) * ROW + 2, 480) + "px";
    let selected = -1;

    const rowEl = (i, pos) => {
      const r = rows[i];
      const left = (r.offset_ms / total) * 100, width = Math.max((r.duration_ms / total) * 100, 0.15);
      const self = r.duration_ms > 0 ? Math.min(r.self_ms / r.duration_ms, 1) * 100 : 0;
      const name = el("div", { class: "name", style: "padding-left:" + (4 + Math.min(r.depth, 24) * 12) + "px" },
        el("span", { class: "tog", text: kids[i] ? (collapsed[i] ? "▸" : "▾") : "" }),
        el("span", { class: "svc", text: r.service + " " }), r.operation,
        r.count > 1 ? el("span", { class: "chip", text: "×" + r.count }) : null,
        r.n_plus_one ? el("span", { class: "chip warn", text: "N+1?" }) : null,
        r.hidden ? el("span", { class: "chip", text: "+" + r.hidden + " nested" }) : null);
      return el("div", {
        class: "row" + (r.critical ? " crit" : "") + (r.error ? " err" : "") + (i === selected ? " sel" : ""),
        style: "top:" + pos * ROW + "px", "data-span": r.span_id, "data-i": i, role: "treeitem",
        "aria-expanded": kids[i] ? String(!collapsed[i]) : null,
      }, name,
      el("div", { class: "track" }, el("div", { class: "bar", style: "left:" + left + "%;width:" + width + "%" },
        el("div", { class: "self", style: "width:" + self + "%" }))),
      el("div", { class: "dur", text: ms(r.count > 1 ? r.total_ms : r.duration_ms) }));
    };
    // Only the rows in view (and a few around) are in the DOM: a 50,000-row trace scrolls like a short one.
    const draw = () => {
      spacer.style.height = visible.length * ROW + "px";
      const first = Math.max(0, Math.floor(box.scrollTop / ROW) - 10);
      const last = Math.min(visible.length, Math.ceil((box.scrollTop + box.clientHeight) / ROW) + 10);
      const frag = document.createDocumentFragment();
      for (let p = first; p < last; p++) frag.append(rowEl(visible[p], p));
      spacer.replaceChildren(frag);
      box.dataset.visible = visible.length;
    };
    box.addEventListener("scroll", () => requestAnimationFrame(draw));
    const toggle = (i) => {
      collapsed[i] ^= 1;
      computeVisible();
    };
    const select = (i) => {
      selected = i;
      showSpan(detail, rows[i], errors.get(rows[i].span_id));
    };
    spacer.addEventListener("click", (ev) => {
      const row = ev.target.closest(".row");
      if (!row) return;
      const i = +row.dataset.i;
      if (ev.target.classList.contains("tog") && kids[i]) toggle(i); else select(i);
      draw();
    });
    box.addEventListener("keydown", (ev) => {
      const at = Math.max(visible.indexOf(selected), 0);
      if (ev.key === "ArrowDown" || ev.key === "ArrowUp") select(visible[Math.min(Math.max(at + (ev.key === "ArrowDown" ? 1 : -1), 0), visible.length - 1)]);
      else if ((ev.key === "Enter" || ev.key === " ") && selected >= 0 && kids[selected]) toggle(selected);
      else return;
      ev.preventDefault();
      const pos = visible.indexOf(selected) * ROW;
      if (pos < box.scrollTop || pos + ROW > box.scrollTop + box.clientHeight) box.scrollTop = pos - box.clientHeight / 2;
      draw();
    });
    draw();
  }
  function showSpan(box, r, err) {
    const tr = (k, v) => v === undefined || v === null || v === "" ? null : el("tr", {}, el("td", { text: k }), el("td", {}, v));
    const pre = (v) => el("pre", { text: str(v) });
    box.replaceChildren(el("table", {}, el("tbody", {},
      tr("span", r.span_id), tr("service", r.service), tr("operation", r.operation),
      tr("start", "+" + ms(r.offset_ms)), tr("duration", ms(r.duration_ms)), tr("self time", ms(r.self_ms)),
      r.count > 1 ? tr("calls", r.count + " siblings, " + ms(r.total_ms) + " in total" + (r.n_plus_one ? " (N+1?)" : "")) : null,
      tr("critical path", r.critical ? "yes" : null), tr("status", r.error ? "error" : "ok"),
      r.statement ? tr("statement", pre(r.statement)) : null,
      err && err.http_status ? tr("http status", String(err.http_status)) : null,
      err && err.message ? tr("message", pre(err.message)) : null,
      err && err.exceptions ? tr("exceptions", pre(err.exceptions)) : null)));
    box.dataset.span = r.span_id;
  }

  // ---- time-series chart ------------------------------------------------------------------------
  // chart draws latency lines and error bars over [from, to], shading anomalies and marking deploys.
  function chart(series, from, to, meta) {
    const W = 720, H = 250, L = 48, R = 10, T = 10, LAT = 150, GAP = 24, ERR = 50;
    const x = (ms) => L + ((ms - from) / Math.max(to - from, 1)) * (W - L - R);
    const maxLat = Math.max(1, ...series.map((p) => p.p99_ms || p.p95_ms || 0));
    const maxErr = Math.max(1, ...series.map((p) => p.error_pct || 0));
    const yl = (v) => T + LAT - (v / maxLat) * LAT, eTop = T + LAT + GAP, ye = (v) => eTop + ERR - (v / maxErr) * ERR;
    const g = svg("svg", { viewBox: "0 0 " + W + " " + H, class: "chart", role: "img" });
    for (const f of [0, 0.5, 1]) {
      g.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: yl(maxLat * f), y2: yl(maxLat * f) }),
        svg("text", { x: L - 4, y: yl(maxLat * f) + 4, "text-anchor": "end" }, ms(maxLat * f)));
    }
    g.append(svg("text", { x: L - 4, y: ye(maxErr) + 8, "text-anchor": "end" }, maxErr.toFixed(1) + "%"),
      svg("line", { class: "grid", x1: L, x2: W - R, y1: ye(0), y2: ye(0) }));
    for (const a of (meta && meta.anomalies) || []) {
      const s = Math.max(t(a.started), from), e = Math.min(a.ended ? t(a.ended) : to, to);
      if (e <= s) continue;
      g.append(svg("rect", { class: "anomaly", x: x(s), y: T, width: Math.max(x(e) - x(s), 2), height: H - T - 16, "data-anomaly": a.id },
        svg("title", {}, "anomaly #" + a.id + ": " + a.metric + " (" + a.severity + ")")));
    }
    const step = series.length > 1 ? t(series[1].t) - t(series[0].t) : (to - from);
    const bw = Math.max(((step / Math.max(to - from, 1)) * (W - L - R)) * 0.7, 1);
    for (const p of series) {
      if (!p.error_pct) continue;
      g.append(svg("rect", { class: "errbar", x: x(t(p.t)), y: ye(p.error_pct), width: bw, height: ye(0) - ye(p.error_pct) },
        svg("title", {}, p.t + ": " + p.error_pct + "% errors")));
    }
    for (const k of ["p50_ms", "p95_ms", "p99_ms"]) {
      const pts = series.filter((p) => p.requests > 0).map((p) => x(t(p.t) + step / 2).toFixed(1) + "," + yl(p[k]).toFixed(1));
      if (pts.length) g.append(svg("path", { class: "line " + k.slice(0, 3), d: "M" + pts.join("L") }));
    }
    for (const d of (meta && meta.deploys) || []) {
      const at = t(d.at);
      if (at < from || at > to) continue;
      g.append(svg("line", { class: "deploy", x1: x(at), x2: x(at), y1: T, y2: H - 16, "data-version": d.version }),
        svg("text", { class: "deploy-label", x: x(at) + 3, y: T + 10 }, "deploy " + d.version));
    }
    for (let i = 0; i <= 4; i++) {
      const at = from + ((to - from) * i) / 4;
      g.append(svg("text", { x: x(at), y: H - 2, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" }, hhmm(at)));
    }
    g.append(svg("text", { x: L, y: eTop - 6 }, "error %"));
    return g;
  }
  const chartLegend = (meta) => el("div", { class: "legend" },
    el("span", {}, el("i", { style: "background:#6aa0ff" }), "p50"),
    el("span", {}, el("i", { style: "background:var(--bar)" }), "p95"),
    el("span", {}, el("i", { style: "background:var(--crit)" }), "p99"),
    el("span", {}, el("i", { style: "background:var(--err)" }), "errors"),
    el("span", {}, el("i", { style: "background:var(--err);opacity:.25" }), ((meta && meta.anomalies) || []).length + " anomalies"),
    el("span", {}, el("i", { style: "background:#7a4cd9" }), ((meta && meta.deploys) || []).length + " deploys"));

  function renderMetrics(sc, meta) {
    const name = sc.service + (sc.operation ? " " + sc.operation : "");
    const tot = sc.total || {};
    app.replaceChildren(header(name, [span(sc.window), "step " + sc.step,
      num(tot.requests || 0) + " requests", (tot.error_pct || 0) + "% errors", "p95 " + ms(tot.p95_ms || 0)], meta));
    if (!(sc.series || []).length) {
      app.append(el("div", { class: "empty", text: sc.note || "No requests in this window." }));
      return;
    }
    app.append(chartLegend(meta), el("div", { class: "panel" }, chart(sc.series, t(sc.window.from), t(sc.window.to), meta)));
    if ((sc.operations || []).length) app.append(breakdown(sc.operations.map((o) => ({ key: o.operation, v: o.p95_ms, label: ms(o.p95_ms) + " p95, " + num(o.requests) + " req" })), "operations by p95"));
  }

  // ---- LLM spend -----------------------------------------------------------------------------
  function breakdown(items, title, second) {
    const max = Math.max(...items.map((i) => i.v || 0), 1e-9), max2 = second ? Math.max(...items.map((i) => i.v2 || 0), 1e-9) : 0;
    const b = el("div", { class: "bars", "aria-label": title });
    for (const i of items) {
      b.append(el("div", { class: "name", text: i.key }),
        el("div", { class: "track", "data-key": i.key }, el("div", { class: "fill", style: "width:" + ((i.v || 0) / max) * 100 + "%" }),
          second ? el("div", { class: "fill tok", style: "width:" + ((i.v2 || 0) / max2) * 100 + "%" }) : null),
        el("div", { class: "num", text: i.label }));
    }
    return b;
  }
  function renderLLM(sc, meta) {
    const tot = sc.totals || {};
    app.replaceChildren(header("LLM spend by " + sc.group_by, [span(sc.window)], meta),
      el("div", { class: "cards" },
        card(usd(tot.cost_usd), "cost" + (tot.unknown_cost_calls ? " (+" + tot.unknown_cost_calls + " calls unpriced)" : "")),
        card(num(tot.calls), "calls"), card(num(tot.input_tokens + tot.output_tokens), "tokens (in + out)"), card(num(tot.errors), "failed calls")));
    for (const l of sc.leaders || []) app.append(el("div", { class: "sub" }, "Most " + l.measure + ": ", el("b", { text: l.key }), " (" + (+l.pct).toFixed(1) + "%)"));
    const groups = sc.groups || [];
    if (!groups.length) {
      app.append(el("div", { class: "empty", text: sc.note || "No LLM calls in this window." }));
      return;
    }
    app.append(el("div", { class: "legend" }, el("span", {}, el("i", { style: "background:var(--bar)" }), "cost"),
      el("span", {}, el("i", { style: "background:var(--crit)" }), "tokens")),
    breakdown(groups.map((g) => ({ key: g.key, v: g.cost_usd || 0, v2: g.input_tokens + g.output_tokens,
      label: (g.unknown_cost_calls === g.calls ? "price unknown" : usd(g.cost_usd)) + " · " + num(g.input_tokens + g.output_tokens) + " tok · " + num(g.calls) + " calls" })), "spend", true));
  }
  const card = (v, k) => el("div", { class: "card" }, el("div", { class: "v", text: v }), el("div", { class: "k", text: k }));

  // ---- root cause ----------------------------------------------------------------------------
  function renderRCA(sc, meta) {
    const a = sc.anomaly || {};
    app.replaceChildren(header("Anomaly #" + a.id + ": " + a.service + (a.operation ? " " + a.operation : "") + " " + a.metric,
      [el("span", { class: "chip warn", text: a.severity }), "baseline " + a.baseline + ", observed " + a.observed,
        a.started.slice(0, 16).replace("T", " ") + (a.ended ? " – " + a.ended.slice(11, 16) : " – ongoing") + " UTC", "analysis " + sc.status], meta));
    if (meta && meta.series && meta.series.length) {
      app.append(chartLegend(meta), el("div", { class: "panel" }, chart(meta.series, t(meta.from), t(meta.to), meta)));
    }
    if (sc.summary) app.append(el("p", { class: "summary", text: sc.summary }));
    if (sc.note) app.append(el("div", { class: "sub", text: sc.note }));
    for (const c of sc.causes || []) {
      const conf = typeof c.confidence === "number" ? c.confidence : 0;
      app.append(el("div", { class: "cause", "data-rank": c.rank },
        el("div", {}, el("b", { text: "#" + (c.rank || "") + " " + (c.service || "") + (c.operation ? " " + c.operation : "") }),
          el("span", { class: "chip", text: c.kind || "cause" }), el("span", { class: "chip", text: Math.round(conf * 100) + "% confidence" })),
        el("div", { class: "conf", style: "width:" + conf * 100 + "%" }),
        el("div", { text: str(c.description || "") }),
        c.attribute ? el("div", { class: "sub", text: c.attribute + " = " + str(c.value) }) : null,
        (c.trace_ids || []).length ? el("div", { class: "traces", text: "example traces: " + c.trace_ids.join(", ") }) : null));
    }
  }

  const renderers = { trace: renderTrace, metrics: renderMetrics, llm: renderLLM, rca: renderRCA };
  function render(result, started = performance.now()) {
    const sc = result && result.structuredContent;
    if (!sc || result.isError) {
      const text = ((result && result.content) || []).map((c) => c.text || "").join("\n");
      app.replaceChildren(el("div", { class: "empty", text: text || "This answer has nothing to draw." }));
      return;
    }
    renderers[view](sc, (result._meta && result._meta[META]) || {});
    document.body.dataset.rendered = (performance.now() - started).toFixed(1);
  }

  // ---- the MCP Apps bridge: JSON-RPC 2.0 over postMessage with the host ------------------------
  function connect() {
    let next = 1;
    const pending = new Map();
    const post = (m) => window.parent.postMessage(Object.assign({ jsonrpc: "2.0" }, m), "*");
    host = {
      request: (method, params) => new Promise((resolve, reject) => {
        const id = next++;
        pending.set(id, { resolve, reject });
        post({ id, method, params });
      }),
      notify: (method, params) => post({ method, params }),
    };
    window.addEventListener("message", (ev) => {
      if (ev.source !== window.parent) return;
      const m = ev.data;
      if (!m || m.jsonrpc !== "2.0") return;
      if (m.method === undefined && pending.has(m.id)) {
        const p = pending.get(m.id);
        pending.delete(m.id);
        m.error ? p.reject(m.error) : p.resolve(m.result);
        return;
      }
      switch (m.method) {
        case "ui/notifications/tool-result": render(m.params); break;
        case "ui/notifications/tool-cancelled": app.replaceChildren(el("div", { class: "empty", text: "The call was cancelled." })); break;
        case "ui/notifications/host-context-changed": applyContext(m.params); break;
        case "ui/resource-teardown": case "ping": post({ id: m.id, result: {} }); break;
        default: if (m.id !== undefined && m.method) post({ id: m.id, error: { code: -32601, message: "method not found: " + m.method } });
      }
    });
    host.request("ui/initialize", { appInfo: { name: "tracekit-" + view, version: "1" }, appCapabilities: {}, protocolVersion: "2026-01-26" })
      .then((res) => {
        applyContext((res && res.hostContext) || {});
        host.notify("ui/notifications/initialized", {});
        let last = 0;
        new ResizeObserver(() => {
          const h = Math.ceil(document.documentElement.scrollHeight);
          if (h !== last) host.notify("ui/notifications/size-changed", { width: Math.ceil(document.documentElement.scrollWidth), height: (last = h) });
        }).observe(document.body);
      }, (err) => app.replaceChildren(el("div", { class: "empty", text: "The host refused to initialise this view: " + str(err) })));
  }
  function applyContext(ctx) {
    if (ctx.theme) document.documentElement.style.colorScheme = ctx.theme;
    const vars = (ctx.styles && ctx.styles.variables) || {};
    for (const [k, v] of Object.entries(vars)) if (v) document.documentElement.style.setProperty(k, v);
  }

  const embedded = document.getElementById("tk-data");
  if (embedded) {
    const started = performance.now(); // the page's data is parsed as part of drawing it
    render(JSON.parse(embedded.textContent), started);
  }
  else if (window.parent !== window) connect();
  else app.replaceChildren(el("div", { class: "empty", text: "This view is shown by an MCP Apps host or at its /ui link." }));
})();
