// Axoneme UI: one EventSource per view (namespace + filter); the server sends
// `map` snapshots, `flow` rows, `health` alerts. No framework, no build step.
"use strict";

const MAX_ROWS = 500;
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
const state = { source: null, rows: [], map: { nodes: [], edges: [] }, selected: null, namespace: "" };

function el(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// ---- service map ----------------------------------------------------------

// Layers: a node sits one column right of its furthest predecessor (cycles capped).
function layers(nodes, edges) {
  const layer = new Map(nodes.map((n) => [n.id, 0]));
  for (let round = 0; round < nodes.length; round++) {
    let moved = false;
    for (const e of edges) {
      if (e.src === e.dst) continue;
      const want = layer.get(e.src) + 1;
      if (want > layer.get(e.dst) && want < nodes.length) { layer.set(e.dst, want); moved = true; }
    }
    if (!moved) break;
  }
  return layer;
}

function nodeLabel(n) {
  if (n.kind === "workload" && n.namespace !== state.namespace) return `${n.namespace}/${n.label}`;
  return n.label;
}

function renderMap() {
  const { nodes, edges } = state.map;
  const layer = layers(nodes, edges);
  const columns = new Map();
  const pos = new Map();
  for (const n of nodes) {
    const col = layer.get(n.id);
    const row = (columns.get(col) || 0);
    columns.set(col, row + 1);
    pos.set(n.id, { x: 110 + col * 260, y: 50 + row * 80 });
  }
  const svg = $("map");
  const width = 220 + 260 * Math.max(0, ...layer.values());
  const height = 100 + 80 * Math.max(1, ...columns.values());
  svg.setAttribute("viewBox", `0 0 ${Math.max(width, 600)} ${height}`);
  svg.style.height = `${height}px`;
  const gEdges = $("edges");
  const gNodes = $("nodes");
  gEdges.replaceChildren();
  gNodes.replaceChildren();
  const perPair = new Map();
  for (const e of edges) {
    const a = pos.get(e.src), b = pos.get(e.dst);
    const pair = `${e.src}|${e.dst}`;
    const nth = perPair.get(pair) || 0;
    perPair.set(pair, nth + 1);
    const bend = 30 + nth * 26;
    const x1 = a.x + 75, y1 = a.y, x2 = b.x - 75, y2 = b.y;
    const d = x2 > x1
      ? `M${x1},${y1} C${x1 + 60},${y1 + nth * 18} ${x2 - 60},${y2 + nth * 18} ${x2},${y2}`
      : `M${a.x},${a.y + 18} C${a.x},${a.y + bend + 40} ${b.x},${b.y + bend + 40} ${b.x},${b.y + 18}`;
    const g = el("g", {
      class: `edge ${e.verdict}` + (state.selected === e.key ? " selected" : ""),
      "data-key": e.key, "data-src": e.src, "data-dst": e.dst, "data-verdict": e.verdict,
    });
    g.append(el("path", { d }));
    const ok = (e.counts.FORWARDED || 0) + (e.counts.AUDIT || 0);
    const bad = (e.counts.DROPPED || 0) + (e.counts.ERROR || 0);
    const label = [e.port, ok ? `✓${ok}` : "", bad ? `✗${bad}` : ""].filter(Boolean).join("  ");
    const lx = x2 > x1 ? (x1 + x2) / 2 : (a.x + b.x) / 2;
    const ly = x2 > x1 ? (y1 + y2) / 2 - 6 + nth * 14 : Math.max(a.y, b.y) + bend + 30;
    g.append(el("text", { x: lx, y: ly, "text-anchor": "middle" }, label));
    g.append(el("title", {}, `${e.src} → ${e.dst} ${e.port}\n${JSON.stringify(e.counts)}`));
    g.addEventListener("click", () => selectEdge(e.key));
    gEdges.append(g);
  }
  for (const n of nodes) {
    const p = pos.get(n.id);
    const outside = n.kind === "workload" && n.namespace !== state.namespace && state.namespace;
    const g = el("g", { class: `node ${n.kind}` + (outside ? " outside" : ""), "data-id": n.id,
                        transform: `translate(${p.x},${p.y})` });
    g.append(el("rect", { x: -75, y: -18, width: 150, height: 36 }));
    g.append(el("text", {}, nodeLabel(n)));
    gNodes.append(g);
  }
  $("map-empty").hidden = nodes.length > 0;
}

// ---- flows table ------------------------------------------------------------

function timeText(t) {
  const d = new Date(t * 1000);
  return d.toTimeString().slice(0, 8) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function rowFor(f) {
  const tr = document.createElement("tr");
  tr.className = `flow verdict-${f.verdict}`;
  tr.dataset.edge = f.edge;
  tr.dataset.verdict = f.verdict;
  const details = f.dropReason || f.flags || "";
  const cells = [timeText(f.time), f.node, f.srcPod || f.src, f.dstPod || f.dst, f.port,
                 f.verdict, f.type + (f.isReply ? " (reply)" : ""), details];
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  return tr;
}

function renderRows() {
  const body = document.querySelector("#flows tbody");
  const shown = state.rows.filter((f) => !state.selected || f.edge === state.selected);
  body.replaceChildren(...shown.map(rowFor));
  $("count").textContent = `${shown.length} of ${state.rows.length} flows`;
}

function addFlow(f) {
  state.rows.unshift(f);
  if (state.rows.length > MAX_ROWS) state.rows.length = MAX_ROWS;
  if (state.selected && f.edge !== state.selected) { $("count").textContent = `… of ${state.rows.length} flows`; return; }
  const body = document.querySelector("#flows tbody");
  body.prepend(rowFor(f));
  while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
  $("count").textContent = `${body.rows.length} of ${state.rows.length} flows`;
}

function selectEdge(key) {
  state.selected = key;
  $("selection").hidden = !key;
  $("selected-edge").textContent = key ? key.replaceAll("|", " → ").replace(/ → ([^ ]+)$/, " $1") : "";
  renderRows();
  renderMap();
}

// ---- health -----------------------------------------------------------------

function renderHealth(h) {
  $("reach").textContent = h.nodes.length
    ? "Cluster health: " + h.nodes.map((n) => `${n.source} reaches ${n.reachable}/${n.nodes}`).join(", ")
    : "Cluster health: no agent runs health checking";
  const list = $("alerts");
  list.replaceChildren(...h.alerts.map((a) => {
    const li = document.createElement("li");
    li.className = `alert ${a.metric}`;
    li.dataset.target = a.target;
    li.textContent = a.message;
    return li;
  }));
}

// ---- wiring -------------------------------------------------------------------

function connect() {
  if (state.source) state.source.close();
  state.rows = [];
  state.map = { nodes: [], edges: [] };
  state.selected = null;
  selectEdge(null);
  const params = new URLSearchParams({ namespace: state.namespace, filter: $("filter").value });
  const source = new EventSource(`/api/stream?${params}`);
  state.source = source;
  $("status").textContent = "connecting…";
  source.onopen = () => { $("status").textContent = "live"; };
  source.onerror = () => { $("status").textContent = "reconnecting…"; };
  source.addEventListener("map", (ev) => { state.map = JSON.parse(ev.data); renderMap(); });
  source.addEventListener("flow", (ev) => addFlow(JSON.parse(ev.data)));
  source.addEventListener("health", (ev) => renderHealth(JSON.parse(ev.data)));
  source.addEventListener("failure", (ev) => showError(JSON.parse(ev.data).error));
}

function showError(text) {
  $("filter-error").hidden = !text;
  $("filter-error").textContent = text || "";
}

async function apply() {
  const check = await fetch(`/api/check?${new URLSearchParams({ filter: $("filter").value })}`);
  const answer = await check.json();
  if (!answer.ok) { showError(answer.error); return; }
  showError("");
  state.namespace = $("namespace").value.trim();
  const url = new URL(location.href);
  url.searchParams.set("namespace", state.namespace);
  url.searchParams.set("filter", $("filter").value);
  history.replaceState(null, "", url);
  connect();
}

async function start() {
  const query = new URLSearchParams(location.search);
  const config = await (await fetch("/api/config")).json();
  $("namespace").value = query.get("namespace") ?? config.namespace;
  $("filter").value = query.get("filter") ?? "";
  $("apply").addEventListener("click", apply);
  $("filter").addEventListener("keydown", (ev) => { if (ev.key === "Enter") apply(); });
  $("namespace").addEventListener("keydown", (ev) => { if (ev.key === "Enter") apply(); });
  $("clear-edge").addEventListener("click", () => selectEdge(null));
  fetch("/api/namespaces").then((r) => r.json()).then((ns) => {
    $("namespaces").replaceChildren(...(ns.namespaces || []).map((n) => {
      const o = document.createElement("option"); o.value = n; return o;
    }));
  }).catch(() => {});
  await apply();
}

start();
