// The live dashboard: polls /v1/run every second and draws with uPlot (vendored from npm,
// served by the package: no CDN). window.dashboard holds the last /v1/run answer and the
// data each chart was given, so a test can check the charts against the server's numbers.
"use strict";
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const headers = token ? { Authorization: "Bearer " + token } : {};
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const SIZE = { width: 460, height: 260 };
const charts = {};
window.dashboard = { run: null, data: {} };

const fmt3 = (v) => (v === null || v === undefined ? "-" : v.toFixed(3));
const byId = (id) => document.getElementById(id);

// One chart per element, made again only when its series change (a new experience).
function chart(id, opts, data) {
  window.dashboard.data[id] = data;
  const key = JSON.stringify(opts.series.map((s) => s.label));
  const old = charts[id];
  if (old && old.key === key) {
    old.plot.setData(data);
    return;
  }
  if (old) old.plot.destroy();
  const plot = new uPlot({ ...SIZE, ...opts }, data, byId(id));
  charts[id] = { plot, key };
}

function axis(label, extra) {
  return { label, stroke: "#555", grid: { stroke: "#eee" }, ticks: { stroke: "#ccc" }, ...extra };
}

const integerTicks = (u, vals) => vals.map((v) => (Number.isInteger(v) ? String(v) : ""));

function drawCurves(matrix) {
  const rows = matrix.length, cols = rows ? matrix[0].length : 0;
  const xs = [...Array(rows).keys()];
  const data = [xs];
  const series = [{ label: "after experience" }];
  for (let j = 0; j < cols; j++) {
    data.push(xs.map((i) => matrix[i][j]));
    series.push({ label: `experience ${j}`, stroke: COLORS[j % 10], width: 2,
                  points: { show: true, size: 6 }, value: (u, v) => fmt3(v) });
  }
  const known = matrix.flat().filter((v) => v !== null);
  const low = known.length ? Math.max(0, Math.floor((Math.min(...known) - 0.05) * 10) / 10) : 0;
  chart("curves", {
    series,
    scales: { x: { time: false, range: [0, Math.max(rows - 1, 1)] }, y: { range: [low, 1] } },
    axes: [axis("after experience", { splits: () => xs, values: integerTicks }),
           axis("test accuracy", { values: (u, vals) => vals.map((v) => +v.toFixed(2)) })],
  }, data);
}

function drawMatrix(matrix) {
  const table = document.createElement("table");
  table.id = "matrix-table";
  const head = table.insertRow();
  head.appendChild(Object.assign(document.createElement("th"), { textContent: "after \\ test" }));
  const cols = matrix.length ? matrix[0].length : 0;
  // shade from the lowest value shown (light) to the highest (dark): differences of a few
  // points read at a glance; the numbers are in the cells
  const known = matrix.flat().filter((v) => v !== null);
  const lo = Math.min(...known), hi = Math.max(...known);
  const shade = (v) => (hi > lo ? (v - lo) / (hi - lo) : 1);
  for (let j = 0; j < cols; j++) head.appendChild(Object.assign(document.createElement("th"), { textContent: j }));
  matrix.forEach((row, i) => {
    const tr = table.insertRow();
    tr.appendChild(Object.assign(document.createElement("th"), { textContent: i }));
    row.forEach((v, j) => {
      const td = tr.insertCell();
      td.dataset.i = i; td.dataset.j = j;
      td.textContent = fmt3(v);
      td.title = v === null ? "not known yet" : `after experience ${i}, test set ${j}: ${fmt3(v)}`;
      if (v !== null) {
        td.style.background = `hsl(212, 70%, ${Math.round(94 - 54 * shade(v))}%)`;
        td.style.color = shade(v) > 0.55 ? "#fff" : "#222";
      }
    });
  });
  byId("matrix").replaceChildren(table);
}

function drawHistory(history) {
  if (history.length < 1) return;
  const t0 = history[0][0];
  const ts = history.map((h) => h[0] - t0);
  chart("throughput", {
    series: [{ label: "seconds" },
             { label: "examples learned", stroke: COLORS[0], width: 2, fill: "rgba(31,119,180,0.08)" }],
    scales: { x: { time: false } },
    axes: [axis("seconds since the page's first point"), axis("examples learned", { size: 60 })],
  }, [ts, history.map((h) => h[1])]);
  chart("online-chart", {
    series: [{ label: "seconds" },
             { label: "online accuracy", stroke: COLORS[2], width: 2, value: (u, v) => fmt3(v) }],
    scales: { x: { time: false }, y: { range: [0, 1] } },
    axes: [axis("seconds since the page's first point"), axis("accuracy")],
  }, [ts, history.map((h) => (h[2] === undefined ? null : h[2]))]);
  chart("loss-chart", {
    series: [{ label: "seconds" },
             { label: "training loss", stroke: COLORS[3], width: 2, value: (u, v) => fmt3(v) }],
    scales: { x: { time: false } },
    axes: [axis("seconds since the page's first point"), axis("loss")],
  }, [ts, history.map((h) => (h[3] === undefined ? null : h[3]))]);
}

function drawMemory(memory, byTask) {
  const counts = memory.by_class || [];
  const classes = [...counts.keys()];
  chart("memory", {
    series: [{ label: "class" },
             { label: "memories", stroke: COLORS[0], fill: "rgba(31,119,180,0.5)",
               paths: uPlot.paths.bars({ size: [0.7, 60] }), points: { show: false } }],
    scales: { x: { time: false, range: [-0.5, Math.max(counts.length - 0.5, 0.5)] },
              y: { range: [0, Math.max(...counts, 1) * 1.1] } },
    axes: [axis("class", { splits: () => classes, values: integerTicks }), axis("memories")],
  }, [classes, counts]);
  byId("memory-size").textContent = `(${memory.size} of ${memory.capacity})`;
  byId("memory-tasks").textContent = "by task: " +
    Object.entries(byTask || {}).map(([t, c]) => `${t}: ${c}`).join(", ");
}

// The memory's picture, fetched (with the token) when the stored memories may have changed,
// at most every 10 s: drawing it costs the server a moment.
let pictureKey = null, pictureAt = 0;
async function refreshPicture(run) {
  const key = `${run.experiences_evaluated}:${run.published_step}`;
  if (key === pictureKey || Date.now() - pictureAt < 10000) return;
  pictureAt = Date.now();
  const r = await fetch("/v1/memory/picture", { headers });
  if (!r.ok) return;  // no store yet, or nothing stored
  pictureKey = key;
  const img = byId("memory-picture");
  if (img.src) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(await r.blob());
}

async function refresh() {
  try {
    const r = await fetch("/v1/run", { headers });
    if (!r.ok) throw new Error(`/v1/run answered ${r.status}`);
    const run = await r.json();
    window.dashboard.run = run;
    const status = byId("status");
    status.textContent = run.status; status.className = "badge " + run.status.replace(" ", "-");
    byId("learned").textContent = run.learned;
    byId("queued").textContent = run.queued_examples;
    byId("rate").textContent = run.examples_per_second === null ? "-" : Math.round(run.examples_per_second);
    byId("experiences").textContent = run.experiences_ended;
    byId("online").textContent = fmt3(run.online_accuracy);
    byId("learned-share").textContent = run.real_time ? fmt3(run.real_time.learned_share) : "-";
    const s = run.summary || {};
    byId("average").textContent = fmt3(s.average_accuracy);
    byId("forgetting").textContent = fmt3(s.forgetting_chaudhry2018);
    byId("min-acc").textContent = fmt3(s.min_acc);
    byId("empty").hidden = run.received > 0;
    drawCurves(run.matrix);
    drawMatrix(run.matrix);
    drawHistory(run.history || []);
    if (run.memory) drawMemory(run.memory, run.memory_by_task);
    if (run.learned > 0) await refreshPicture(run);
    byId("error").textContent = run.error || "";
    document.body.dataset.step = run.published_step ?? "";
  } catch (e) {
    byId("error").textContent = String(e);
  }
}

for (const el of document.querySelectorAll(".origin")) el.textContent = location.origin;
refresh();
setInterval(refresh, 1000);
