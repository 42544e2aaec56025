// The live dashboard: polls /v1/run and draws with plain SVG (no library, no CDN).
"use strict";
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const headers = token ? { Authorization: "Bearer " + token } : {};
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const W = 420, H = 240, PAD = 36;

function svg(tag, attrs, parent) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

function axes(root, xmax, ymax, xlabel, ylabel) {
  const plot = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}` });
  svg("line", { x1: PAD, y1: H - PAD, x2: W - 8, y2: H - PAD, stroke: "#999" }, plot);
  svg("line", { x1: PAD, y1: 8, x2: PAD, y2: H - PAD, stroke: "#999" }, plot);
  svg("text", { x: W / 2, y: H - 6, "text-anchor": "middle", fill: "#666" }, plot).textContent = xlabel;
  svg("text", { x: 4, y: 16, fill: "#666" }, plot).textContent = ylabel;
  svg("text", { x: PAD - 4, y: 14, "text-anchor": "end", fill: "#666" }, plot).textContent = fmtAxis(ymax);
  svg("text", { x: W - 8, y: H - PAD + 14, "text-anchor": "end", fill: "#666" }, plot).textContent = fmtAxis(xmax);
  root.replaceChildren(plot);
  const sx = (x) => PAD + (W - PAD - 8) * (xmax > 0 ? x / xmax : 0);
  const sy = (y) => H - PAD - (H - PAD - 8) * (ymax > 0 ? y / ymax : 0);
  return { plot, sx, sy };
}

function fmtAxis(v) { return v >= 1000 ? Math.round(v).toLocaleString() : String(+v.toFixed(2)); }
const fmt3 = (v) => (v === null || v === undefined ? "-" : v.toFixed(3));

function drawCurves(matrix) {
  const rows = matrix.length, cols = rows ? matrix[0].length : 0;
  const { plot, sx, sy } = axes(document.getElementById("curves"), Math.max(rows - 1, 1), 1,
                                "after experience", "accuracy");
  for (let j = 0; j < cols; j++) {
    const pts = [], values = [];
    for (let i = 0; i < rows; i++) {
      const v = matrix[i][j];
      if (v === null) continue;
      pts.push(`${sx(i).toFixed(1)},${sy(v).toFixed(1)}`);
      values.push(v);
    }
    svg("polyline", { class: "curve", "data-experience": j, "data-values": values.join(","),
                      points: pts.join(" "), fill: "none", stroke: COLORS[j % 10],
                      "stroke-width": 2 }, plot);
    for (const p of pts) {
      const [x, y] = p.split(",");
      svg("circle", { cx: x, cy: y, r: 3, fill: COLORS[j % 10] }, plot);
    }
  }
}

function drawMatrix(matrix) {
  const table = document.createElement("table");
  table.id = "matrix-table";
  const head = table.insertRow();
  head.appendChild(document.createElement("th"));
  const cols = matrix.length ? matrix[0].length : 0;
  for (let j = 0; j < cols; j++) head.appendChild(Object.assign(document.createElement("th"), { textContent: j }));
  matrix.forEach((row, i) => {
    const tr = table.insertRow();
    tr.appendChild(Object.assign(document.createElement("th"), { textContent: i }));
    row.forEach((v, j) => {
      const td = tr.insertCell();
      td.dataset.i = i; td.dataset.j = j;
      td.textContent = fmt3(v);
      if (v !== null) td.style.background = `hsl(${Math.round(120 * v)}, 60%, 85%)`;
    });
  });
  document.getElementById("matrix").replaceChildren(table);
}

function drawThroughput(history) {
  if (history.length < 1) return;
  const t0 = history[0][0];
  const tmax = Math.max(history[history.length - 1][0] - t0, 1);
  const nmax = Math.max(history[history.length - 1][1], 1);
  const { plot, sx, sy } = axes(document.getElementById("throughput"), tmax, nmax, "seconds", "examples");
  const pts = history.map(([t, n]) => `${sx(t - t0).toFixed(1)},${sy(n).toFixed(1)}`);
  svg("polyline", { id: "throughput-line", points: pts.join(" "), fill: "none",
                    stroke: "#1f77b4", "stroke-width": 2 }, plot);
}

function drawMemory(memory, byTask) {
  const counts = memory.by_class || [];
  const { plot, sx, sy } = axes(document.getElementById("memory"), Math.max(counts.length, 1),
                                Math.max(...counts, 1), "class", "memories");
  const bw = (W - PAD - 8) / Math.max(counts.length, 1) * 0.8;
  counts.forEach((c, k) => {
    svg("rect", { class: "memory-bar", "data-class": k, "data-count": c, x: sx(k) + 2,
                  y: sy(c), width: bw, height: H - PAD - sy(c), fill: COLORS[k % 10] }, plot);
  });
  document.getElementById("memory-size").textContent = `(${memory.size} of ${memory.capacity})`;
  document.getElementById("memory-tasks").textContent = "by task: " +
    Object.entries(byTask || {}).map(([t, c]) => `${t === "-1" ? "none" : t}: ${c}`).join(", ");
}

async function refresh() {
  try {
    const r = await fetch("/v1/run", { headers });
    if (!r.ok) throw new Error(`/v1/run answered ${r.status}`);
    const run = await r.json();
    const status = document.getElementById("status");
    status.textContent = run.status; status.className = "badge " + run.status;
    document.getElementById("learned").textContent = run.learned;
    document.getElementById("queued").textContent = run.queued_examples;
    document.getElementById("rate").textContent = run.examples_per_second === null ? "-" : Math.round(run.examples_per_second);
    document.getElementById("experiences").textContent = run.experiences_ended;
    document.getElementById("online").textContent = fmt3(run.online_accuracy);
    const s = run.summary || {};
    document.getElementById("average").textContent = fmt3(s.average_accuracy);
    document.getElementById("forgetting").textContent = fmt3(s.forgetting_chaudhry2018);
    drawCurves(run.matrix);
    drawMatrix(run.matrix);
    drawThroughput(run.history || []);
    if (run.memory) drawMemory(run.memory, run.memory_by_task);
    document.getElementById("error").textContent = run.error || "";
    document.body.dataset.step = run.published_step ?? "";
  } catch (e) {
    document.getElementById("error").textContent = String(e);
  }
}

refresh();
setInterval(refresh, 1000);
