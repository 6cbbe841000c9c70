// The lab's page: wires the server's JSON and its event stream to the experiment's charts, the
// live network drawing, the runs table, the tabs and the build form. The server does the work;
// nothing is computed here but colours and layout.
"use strict";

const $ = (id) => document.getElementById(id);
const lab = (window.lab = {
  runs: [], byId: {}, focus: null, experiment: null, link: "", axis: "iteration",
  curves: {}, evals: {}, speed: {}, status: null, classes: [], choices: null, input: null,
});
const PLOT = { displayModeBar: false, responsive: true };
const MARGIN = { l: 46, r: 8, t: 28, b: 36 };
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];
let stream = null;
let lastEventId = 0;

// --- requests ----------------------------------------------------------------------------

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, init);
  const data = await response.json();
  if (!response.ok) {
    const error = new Error(data.error || response.statusText);
    error.field = data.field;
    throw error;
  }
  return data;
}

function showError(field, message) {
  const spot = document.querySelector(`.err[data-for="${field}"]`) ||
    document.querySelector('.err[data-for="general"]');
  spot.textContent = message || "";
}

function clearErrors() {
  document.querySelectorAll(".err").forEach((e) => { e.textContent = ""; });
}

function fill(select, values) {
  select.innerHTML = "";
  for (const v of values) select.add(new Option(v, v));
}

// --- drawing only what is seen, at most every DRAW_EVERY ms ------------------------------
// The browser shares the machine with training: a picture nobody sees is not drawn, and each
// kind draws only its newest data.

const DRAW_EVERY = 750;
const pending = new Map(); // kind -> [draw, the ids of the elements it draws into]
const onScreen = new Set();
let drawTimer = 0;

const watcher = new IntersectionObserver((entries) => {
  for (const e of entries) {
    if (e.isIntersecting) onScreen.add(e.target.id); else onScreen.delete(e.target.id);
  }
  schedule();
});

function later(kind, draw, ids) {
  pending.set(kind, [draw, ids]);
  schedule();
}

function schedule() {
  if (!drawTimer && pending.size) drawTimer = setTimeout(() => requestAnimationFrame(drawPending), DRAW_EVERY);
}

function drawPending() {
  drawTimer = 0;
  if (document.hidden) return; // a hidden tab draws when it is shown again
  for (const [kind, [draw, ids]] of [...pending]) {
    if (!ids.some((id) => onScreen.has(id))) continue;
    pending.delete(kind);
    draw();
  }
}
document.addEventListener("visibilitychange", schedule);

// --- the experiment's curves -------------------------------------------------------------

function colorOf(id) {
  const i = lab.runs.findIndex((r) => r.id === id);
  return COLORS[(i < 0 ? 0 : i) % COLORS.length];
}

function xOf(run, iteration) {
  if (lab.axis !== "epoch") return iteration;
  return (iteration * run.config.batch_size) / run.train_size;
}

function xRange() {
  const ends = lab.runs.map((r) => xOf(r, r.total));
  return [0, Math.max(1, ...ends)];
}

function axisTitle() {
  return lab.axis === "epoch" ? "epoch" : "step";
}

let queued = {}; // run id -> {loss: [[x, y]...], evals: [record...]}

function rebuildCharts() {
  queued = {};
  const loss = [], acc = [];
  for (const run of lab.runs) {
    const color = colorOf(run.id), curve = lab.curves[run.id] || [], evals = lab.evals[run.id] || [];
    const test = evals.filter((e) => e.test_loss != null);
    loss.push({ x: curve.map((p) => xOf(run, p[0])), y: curve.map((p) => p[1]), mode: "lines",
      name: run.label, legendgroup: String(run.id), line: { color, width: 1.5 } });
    loss.push({ x: test.map((e) => xOf(run, e.iteration)), y: test.map((e) => e.test_loss),
      mode: "lines+markers", name: run.label + " (test)", legendgroup: String(run.id), showlegend: false,
      line: { color, dash: "dash", width: 1.5 }, marker: { size: 4 } });
    const scored = evals.filter((e) => e.test_accuracy != null);
    acc.push({ x: scored.map((e) => xOf(run, e.iteration)), y: scored.map((e) => e.test_accuracy),
      mode: "lines+markers", name: run.label, legendgroup: String(run.id),
      line: { color, width: 2 }, marker: { size: 5 } });
    const trained = evals.filter((e) => e.train_accuracy != null);
    acc.push({ x: trained.map((e) => xOf(run, e.iteration)), y: trained.map((e) => e.train_accuracy),
      mode: "lines", name: run.label + " (train)", legendgroup: String(run.id), showlegend: false,
      line: { color, dash: "dot", width: 1 } });
  }
  const x = { title: { text: axisTitle() }, range: xRange() };
  const legend = { x: 1, xanchor: "right", y: 1, bgcolor: "rgba(255,255,255,0.75)", font: { size: 10 } };
  Plotly.react("chart-loss", loss, { title: { text: "loss: training (line), test (dashed)", font: { size: 13 } },
    margin: MARGIN, xaxis: x, yaxis: { type: "log" }, legend, showlegend: true }, PLOT);
  Plotly.react("chart-acc", acc, { title: { text: "accuracy %: test (line), training (dotted)", font: { size: 13 } },
    margin: MARGIN, xaxis: x, showlegend: false }, PLOT);
}

function flushCharts() {
  const lossX = [], lossY = [], lossIdx = [], accX = [], accY = [], accIdx = [];
  lab.runs.forEach((run, i) => {
    const q = queued[run.id];
    if (!q) return;
    if (q.loss.length) {
      lossX.push(q.loss.map((p) => xOf(run, p[0]))); lossY.push(q.loss.map((p) => p[1])); lossIdx.push(2 * i);
    }
    const test = q.evals.filter((e) => e.test_loss != null);
    if (test.length) {
      lossX.push(test.map((e) => xOf(run, e.iteration))); lossY.push(test.map((e) => e.test_loss)); lossIdx.push(2 * i + 1);
      accX.push(test.map((e) => xOf(run, e.iteration))); accY.push(test.map((e) => e.test_accuracy)); accIdx.push(2 * i);
    }
    const trained = q.evals.filter((e) => e.train_accuracy != null);
    if (trained.length) {
      accX.push(trained.map((e) => xOf(run, e.iteration))); accY.push(trained.map((e) => e.train_accuracy)); accIdx.push(2 * i + 1);
    }
  });
  queued = {};
  if (lossIdx.length) Plotly.extendTraces("chart-loss", { x: lossX, y: lossY }, lossIdx);
  if (accIdx.length) Plotly.extendTraces("chart-acc", { x: accX, y: accY }, accIdx);
}

function queue(id) {
  return (queued[id] = queued[id] || { loss: [], evals: [] });
}

// --- the runs table ----------------------------------------------------------------------

function tableCells(run) {
  const evals = lab.evals[run.id] || [];
  const last = evals.length ? evals[evals.length - 1] : null;
  const accuracy = last && last.test_accuracy != null ? last.test_accuracy : run.test_accuracy;
  return {
    status: run.status + (run.message ? ` · ${run.message}` : ""),
    step: `${run.iteration} / ${run.total}`,
    accuracy: accuracy != null ? accuracy.toFixed(2) + "%" : "–",
    speed: lab.speed[run.id] ? lab.speed[run.id].toFixed(0) : "–",
  };
}

function drawTable() {
  // the rows are made again only when the runs change; otherwise their cells are updated
  const body = $("runs-table").querySelector("tbody");
  const shape = lab.runs.map((r) => `${r.id}${r.id === lab.focus ? "*" : ""}`).join(",");
  if (body.dataset.shape === shape) {
    lab.runs.forEach((run, i) => {
      const cells = tableCells(run), row = body.rows[i];
      row.cells[2].textContent = cells.status;
      row.cells[3].textContent = cells.step;
      row.cells[4].textContent = cells.accuracy;
      row.cells[6].textContent = cells.speed;
    });
    return;
  }
  body.dataset.shape = shape;
  body.innerHTML = "";
  for (const run of lab.runs) {
    const row = body.insertRow();
    row.dataset.run = run.id;
    if (run.id === lab.focus) row.className = "focus";
    const now = tableCells(run);
    const cells = [
      `<span class="swatch" style="background:${colorOf(run.id)}"></span>`,
      `<span class="name" title="draw this run">${escapeHtml(run.label)}</span>`,
      escapeHtml(now.status),
      now.step,
      now.accuracy,
      run.spec.parameters.toLocaleString("en"),
      now.speed,
      lab.runs.length > 1 ? `<button type="button" class="remove" title="remove this run">×</button>` : "",
    ];
    cells.forEach((html, i) => {
      const cell = row.insertCell();
      cell.innerHTML = html;
      if (i === 1) cell.className = "left";
    });
    row.querySelector(".name").addEventListener("click", () => post("/api/focus", { run: run.id }));
    const remove = row.querySelector(".remove");
    if (remove) remove.addEventListener("click", () => post("/api/remove", { run: run.id }));
  }
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
}

async function post(path, body, field = "general") {
  showError(field, "");
  try {
    return await api(path, body);
  } catch (err) {
    showError(field, err.message);
    return null;
  }
}

// --- events ------------------------------------------------------------------------------

function setRuns(data) {
  lab.runs = data.runs;
  lab.byId = Object.fromEntries(data.runs.map((r) => [r.id, r]));
  lab.focus = data.focus;
  for (const id of Object.keys(lab.curves)) if (!lab.byId[id]) delete lab.curves[id];
  for (const id of Object.keys(lab.evals)) if (!lab.byId[id]) delete lab.evals[id];
  if (data.link !== undefined) setLink(data.link);
  const focus = lab.byId[lab.focus];
  if (focus) {
    lab.classes = focus.classes;
    $("focus-label").textContent = `· ${focus.label} · ${focus.spec.text} on ${focus.config.dataset}`;
    $("total").textContent = focus.total;
    fill($("grad-label"), focus.classes.map((_, i) => i));
    $("grad-label").querySelectorAll("option").forEach((o, i) => { o.textContent = focus.classes[i]; });
    fill($("hist-layer"), focus.spec.sizes.slice(1).map((_, i) => `fc${i + 1}`));
    if (!lab.formTouched) formFromConfig(focus.config);
  }
  rebuildCharts();
  drawTable();
}

function setLink(link) {
  lab.link = link;
  if (link && location.search !== "?" + link) history.replaceState(null, "", "?" + link);
  const name = link.startsWith("experiment=") ? link.slice("experiment=".length) : "";
  $("experiment").value = name;
}

function onExperiment(data) {
  lab.experiment = data;
  lab.axis = data.axis;
  lab.curves = {};
  lab.evals = {};
  lab.speed = {};
  $("look-for").innerHTML = data.look_for ? `<strong>What to look for.</strong> ${escapeHtml(data.look_for)}` +
    (data.lesson ? ` ${escapeHtml(lessonText(data.lesson))}` : "") : "";
  setRuns(data);
}

function lessonText(lesson) {
  // "tutorials/05_activations_init.ipynb#vanishing-gradients" -> lesson 5, "vanishing gradients"
  const match = /tutorials\/0?(\d+)_[^#]*(?:#(.*))?/.exec(lesson);
  if (!match) return "";
  return `Taught in lesson ${match[1]} of the docs` + (match[2] ? `, “${match[2].replace(/-/g, " ")}”.` : ".");
}

function onRuns(data) {
  setRuns(data);
}

function onStatus(data) {
  lab.status = data.status;
  document.body.dataset.status = data.status;
  $("status").textContent = data.status;
  $("message").textContent = data.message ? "· " + data.message : "";
  for (const r of data.runs || []) {
    const run = lab.byId[r.id];
    if (run) Object.assign(run, { status: r.status, iteration: r.iteration, total: r.total, message: r.message });
  }
  const focus = lab.byId[data.focus];
  if (focus) {
    $("iteration").textContent = focus.iteration;
    const lr = (data.runs || []).find((r) => r.id === data.focus);
    if (lr && lr.lr != null && document.activeElement !== $("live-lr")) $("live-lr").value = +lr.lr.toPrecision(4);
  }
  if (data.status !== "playing") { lab.speed = {}; lastCount = null; $("speed").textContent = ""; }
  later("table", drawTable, ["runs-table"]);
}

function onMetrics(data) {
  const run = lab.byId[data.run];
  if (!run) return;
  run.iteration = data.iteration;
  if (data.steps_per_second) {  // smoothed: one window may hold an evaluation, the next none
    const before = lab.speed[data.run];
    lab.speed[data.run] = before ? 0.8 * before + 0.2 * data.steps_per_second : data.steps_per_second;
  }
  if (data.run === lab.focus) $("iteration").textContent = data.iteration;
  wallSpeed();
  (lab.curves[data.run] = lab.curves[data.run] || []).push([data.iteration, data.train_loss]);
  queue(data.run).loss.push([data.iteration, data.train_loss]);
  later("charts", flushCharts, ["chart-loss", "chart-acc"]);
  later("table", drawTable, ["runs-table"]);
}

let lastCount = null; // [time, the runs' steps summed] at the start of the speed's window

function wallSpeed() {
  // every run's steps together, per second of wall time: the whole experiment's throughput
  const now = performance.now(), total = lab.runs.reduce((a, r) => a + r.iteration, 0);
  if (!lastCount || total < lastCount[1]) { lastCount = [now, total]; return; }
  if (now - lastCount[0] < 1000) return;
  const rate = ((total - lastCount[1]) * 1000) / (now - lastCount[0]);
  $("speed").textContent = `· ${rate.toFixed(0)} steps/s in all`;
  lastCount = [now, total];
}

function onEval(data) {
  if (!lab.byId[data.run]) return;
  (lab.evals[data.run] = lab.evals[data.run] || []).push(data);
  queue(data.run).evals.push(data);
  later("charts", flushCharts, ["chart-loss", "chart-acc"]);
  later("table", drawTable, ["runs-table"]);
}

function onSnapshot(data) {
  lab.snapshot = data;
  later("tiles", () => drawTiles(data.tiles), ["tiles"]);
  later("norms", () => drawNorms(data), ["chart-norms", "chart-dead"]);
  later("histogram", drawHistogram, ["chart-hist"]);
}

function onNetwork(data) {
  lab.network = data;
  if (data.label != null && !lab.labelTouched) $("grad-label").value = data.label; // the math's label
  later("network", () => drawNetwork(data), ["network"]);
}

function onConfusion(data) {
  lab.confusion = data;
  later("confusion", () => drawConfusion(data), ["chart-confusion"]);
}

const HANDLERS = { experiment: onExperiment, runs: onRuns, status: onStatus, metrics: onMetrics,
  eval: onEval, snapshot: onSnapshot, network: onNetwork, confusion: onConfusion };

async function loadState() {
  const state = await api("/api/state");
  if (state.experiment) onExperiment(state.experiment);
  if (state.runs) setRuns(state.runs);
  lab.curves = {};
  for (const [id, curve] of Object.entries(state.curves || {})) lab.curves[id] = curve;
  lab.evals = {};
  for (const [id, evals] of Object.entries(state.evals || {})) lab.evals[id] = evals;
  rebuildCharts();
  if (state.status) onStatus(state.status);
  if (state.snapshot) onSnapshot(state.snapshot);
  if (state.network) onNetwork(state.network);
  if (state.confusion) onConfusion(state.confusion);
  lastEventId = state.last_event_id;
  openStream();
}

function openStream() {
  if (stream) stream.close();
  stream = new EventSource(`/api/events?after=${lastEventId}`);
  for (const [kind, handle] of Object.entries(HANDLERS)) {
    stream.addEventListener(kind, (event) => {
      lastEventId = Number(event.lastEventId);
      handle(JSON.parse(event.data));
    });
  }
  stream.addEventListener("reset", () => { stream.close(); loadState(); });
  stream.onopen = () => { document.body.dataset.stream = "open"; };
}

// --- the live network drawing ------------------------------------------------------------

const NET = { W: 540, H: 330, top: 16, bottom: 42, left: 84, right: 440 };

function shade(value, scale, positive = [200, 40, 40], negative = [36, 86, 200]) {
  const t = Math.max(-1, Math.min(1, scale ? value / scale : 0));
  const base = t >= 0 ? positive : negative;
  const mix = base.map((c) => Math.round(255 - Math.abs(t) * (255 - c)));
  return `rgb(${mix[0]},${mix[1]},${mix[2]})`;
}

function unitsY(n) {
  const span = NET.H - NET.top - NET.bottom;
  return Array.from({ length: n }, (_, j) => NET.top + ((j + 0.5) * span) / n);
}

function drawNetwork(net) {
  const svg = $("network");
  const layers = net.layers;
  const xs = layers.map((_, i) => NET.left + 40 + (i * (NET.right - NET.left - 40)) / Math.max(layers.length - 1, 1));
  const ys = layers.map((l) => unitsY(l.units.length));
  let out = "";
  // the input: the 28x28 image, joined to every drawn first-layer unit
  const image = inputImage(net.input);
  const imageY = NET.H / 2 - 30;
  out += `<image href="${image}" x="8" y="${imageY}" width="60" height="60" style="image-rendering:pixelated"/>`;
  out += `<rect x="8" y="${imageY}" width="60" height="60" fill="none" stroke="#999"/>`;
  out += `<text x="38" y="${imageY + 76}" class="label">input${net.label != null ? ", label " + lab.classes[net.label] : ""}</text>`;
  for (const y of ys[0]) out += `<line x1="68" y1="${NET.H / 2}" x2="${xs[0]}" y2="${y}" stroke="#dde" stroke-width="0.6"/>`;
  layers.forEach((layer, i) => {
    if (!layer.edges) return;
    layer.edges.forEach((edges, j) => {
      for (const [k, w] of edges) {
        const t = Math.min(Math.abs(w) / layer.weight_scale, 1);
        out += `<line x1="${xs[i - 1]}" y1="${ys[i - 1][k]}" x2="${xs[i]}" y2="${ys[i][j]}" ` +
          `stroke="${w >= 0 ? "#c0392b" : "#2456c8"}" stroke-opacity="${(0.15 + 0.75 * t).toFixed(2)}" ` +
          `stroke-width="${(0.4 + 2.4 * t).toFixed(2)}"/>`;
      }
    });
  });
  layers.forEach((layer, i) => {
    const last = i === layers.length - 1;
    const r = Math.min(9, ((NET.H - NET.top - NET.bottom) / layer.units.length) * 0.42);
    layer.units.forEach((unit, j) => {
      const v = layer.values[j];
      const fill = last ? shade(v, 1, [26, 152, 80]) : shade(v, layer.scale);
      out += `<circle class="unit" cx="${xs[i]}" cy="${ys[i][j]}" r="${r.toFixed(1)}" fill="${fill}" ` +
        `data-layer="${i}" data-unit="${unit}" data-index="${j}"/>`;
      if (last) {
        const name = lab.classes[unit] != null ? lab.classes[unit] : unit;
        const bold = unit === net.prediction ? ' font-weight="700"' : "";
        out += `<text x="${xs[i] + 14}" y="${ys[i][j] + 4}" class="out"${bold}>${escapeHtml(name)} ${(100 * v).toFixed(0)}%</text>`;
      }
    });
    const shown = layer.units.length < layer.size ? `${layer.units.length} of ${layer.size}` : `${layer.size}`;
    out += `<text x="${xs[i]}" y="${NET.H - 24}" class="label">${last ? "output" : layer.name}</text>`;
    out += `<text x="${xs[i]}" y="${NET.H - 10}" class="label">${last ? "softmax" : shown}</text>`;
  });
  svg.innerHTML = out;
  svg.dataset.iteration = net.iteration;
  const wide = layers.filter((l) => l.units.length < l.size);
  const act = layers.length > 1 ? layers[0].activation : "";
  $("network-note").textContent = `Step ${net.iteration}, ${act} units: red positive, blue negative (scaled per layer); ` +
    `lines: each unit's ${3} strongest incoming weights, red positive, blue negative.` +
    (wide.length ? ` Wide layers are drawn as ${wide[0].units.length} of their units, evenly spread.` : "");
}

function inputImage(bytes) {
  const c = document.createElement("canvas");
  c.width = 28; c.height = 28;
  grey(c, bytes, 28, 28);
  return c.toDataURL();
}

function hoverUnit(circle) {
  const net = lab.network;
  if (!net) return;
  const i = Number(circle.dataset.layer), j = Number(circle.dataset.index);
  const layer = net.layers[i];
  const unit = layer.units[j];
  let text = `${layer.name} unit ${unit}: ${i === net.layers.length - 1 ? "probability" : "value"} ` +
    `${layer.values[j].toFixed(4)}`;
  const tile = $("hover-tile");
  if (layer.tiles) {
    grey(tile, decode(layer.tiles).subarray(j * 784, (j + 1) * 784), 28, 28);
    tile.style.visibility = "visible";
    text += " · its 784 incoming weights (light positive, dark negative)";
  } else {
    tile.style.visibility = "hidden";
    const before = net.layers[i - 1];
    text += " · strongest incoming: " + layer.edges[j].map(([k, w]) =>
      `${before.name} unit ${before.units[k]} ${w >= 0 ? "+" : ""}${w.toFixed(3)}`).join(", ");
  }
  $("hover-text").textContent = text;
  lab.hovered = { layer: i, unit };
}

// --- the weights tab ---------------------------------------------------------------------

function drawNorms(data) {
  const names = data.layers.map((l) => l.name);
  Plotly.react("chart-norms", [
    { x: names, y: data.layers.map((l) => l.weight_norm), type: "bar", name: "‖W‖", offsetgroup: "w" },
    { x: names, y: data.layers.map((l) => l.grad_norm), type: "bar", name: "‖∇W‖", yaxis: "y2", offsetgroup: "g" },
  ], { title: { text: "weight and gradient norms", font: { size: 13 } }, margin: { ...MARGIN, r: 50 }, barmode: "group",
    yaxis2: { overlaying: "y", side: "right" }, legend: { orientation: "h", y: -0.2 } }, PLOT);
  const hidden = data.layers.filter((l) => l.dead != null);
  Plotly.react("chart-dead", [{
    x: hidden.map((l) => l.name), y: hidden.map((l) => 100 * l.dead), type: "bar",
  }], { title: { text: hidden.length ? "dead ReLUs (%)" : "dead ReLUs: ReLU nets only", font: { size: 13 } },
    margin: MARGIN, yaxis: { range: [0, 100] } }, PLOT);
}

function binCentres(h) {
  const n = h.counts.length;
  return h.counts.map((_, i) => -h.max + ((i + 0.5) * 2 * h.max) / n);
}

function drawHistogram() {
  const data = lab.snapshot;
  if (!data) return;
  const layer = data.layers.find((l) => l.name === $("hist-layer").value) || data.layers[0];
  const traces = [{ x: binCentres(layer.weights), y: layer.weights.counts, type: "bar", name: "weights" }];
  if (layer.grads) traces.push({ x: binCentres(layer.grads), y: layer.grads.counts, type: "bar",
    name: "gradients", xaxis: "x2", yaxis: "y2" });
  const note = layer.grads ? "" : " (gradients after the first step)";
  Plotly.react("chart-hist", traces, { title: { text: `${layer.name}: weights and gradients${note}`, font: { size: 13 } },
    grid: { rows: 1, columns: 2, pattern: "independent" }, margin: MARGIN, showlegend: false }, PLOT);
}

function grey(canvas, bytes, width, height) {
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(width, height);
  for (let i = 0; i < width * height; i++) image.data.set([bytes[i], bytes[i], bytes[i], 255], 4 * i);
  ctx.putImageData(image, 0, 0);
}

function decode(b64) {
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function drawTiles(tiles) {
  const canvas = $("tiles");
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (!tiles.count) return;
  const bytes = decode(tiles.data);
  const cols = 8, size = canvas.width / cols;
  const tile = document.createElement("canvas");
  tile.width = 28; tile.height = 28;
  for (let u = 0; u < tiles.count; u++) {
    grey(tile, bytes.subarray(u * 784, (u + 1) * 784), 28, 28);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(tile, (u % cols) * size + 1, Math.floor(u / cols) * size + 1, size - 2, size - 2);
  }
}

// --- the confusion tab -------------------------------------------------------------------

function drawConfusion(data) {
  const total = data.matrix.flat().reduce((a, b) => a + b, 0);
  const run = lab.byId[data.run];
  $("confusion-info").textContent = `(${run ? run.label + ", " : ""}step ${data.iteration}: ` +
    `${data.accuracy.toFixed(2)}% of ${total})`;
  const names = lab.classes.map(String);
  Plotly.react("chart-confusion", [{
    z: data.matrix.map((row) => row.map((v) => (v ? Math.log10(v + 1) : 0))), x: names, y: names,
    text: data.matrix, texttemplate: "%{text}", type: "heatmap", showscale: false,
    colorscale: [[0, "#ffffff"], [0.35, "#c6dbef"], [1, "#08306b"]],
    hovertemplate: "true %{y}, predicted %{x}: %{text}<extra></extra>",
  }], { margin: { l: 70, r: 10, t: 10, b: 60 }, xaxis: { title: { text: "predicted" } },
    yaxis: { title: { text: "true" }, autorange: "reversed" } }, PLOT);
}

async function showCell(truth, pred) {
  try {
    const cell = await api(`/api/confusion?true=${truth}&pred=${pred}`);
    lab.cell = cell;
    onConfusion({ ...lab.confusion, iteration: cell.iteration, matrix: cell.matrix,
      accuracy: (100 * cell.matrix.reduce((s, row, i) => s + row[i], 0)) /
        cell.matrix.flat().reduce((a, b) => a + b, 0) });
    $("cell-info").textContent = `true ${lab.classes[truth]}, predicted ${lab.classes[pred]}: ` +
      `${cell.count} test images at step ${cell.iteration}` + (cell.count > cell.indices.length ?
      ` (the first ${cell.indices.length})` : "");
    const box = $("cell-images");
    box.innerHTML = "";
    cell.indices.forEach((index, k) => {
      const c = document.createElement("canvas");
      c.width = 28; c.height = 28; c.title = `test image ${index}`;
      c.dataset.index = index;
      grey(c, decode(cell.images[k]), 28, 28);
      c.addEventListener("click", () => pickTest(index));
      box.append(c);
    });
  } catch (err) {
    showError("general", err.message);
  }
}

// --- look inside -------------------------------------------------------------------------

const pad = $("pad");
const pen = pad.getContext("2d");
let penDown = false, last = null;

function clearPad() {
  pen.fillStyle = "#000";
  pen.fillRect(0, 0, pad.width, pad.height);
}

function point(event) {
  const r = pad.getBoundingClientRect();
  return { x: ((event.clientX - r.left) * pad.width) / r.width,
           y: ((event.clientY - r.top) * pad.height) / r.height };
}

pad.addEventListener("pointerdown", (event) => {
  penDown = true;
  last = point(event);
  pad.setPointerCapture(event.pointerId);
  pen.fillStyle = "#fff";
  pen.beginPath(); pen.arc(last.x, last.y, 9, 0, 2 * Math.PI); pen.fill();
});
pad.addEventListener("pointermove", (event) => {
  if (!penDown) return;
  const p = point(event);
  Object.assign(pen, { strokeStyle: "#fff", lineWidth: 18, lineCap: "round", lineJoin: "round" });
  pen.beginPath(); pen.moveTo(last.x, last.y); pen.lineTo(p.x, p.y); pen.stroke();
  last = p;
});
function endStroke() {
  if (!penDown) return;
  penDown = false;
  lookAt({ png: pad.toDataURL("image/png") });
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

async function lookAt(input) {
  showError("inside", "");
  try {
    const result = await api("/api/inspect", input);
    lab.input = input.png ? { pixels: result.input } : input;
    lab.inspect = result;
    showInside(result);
    await api("/api/input", lab.input); // the network drawing shows it too
  } catch (err) {
    showError("inside", err.message);
  }
}

async function pickTest(index) {
  $("test-index").value = index;
  clearPad();
  await lookAt({ test_index: index });
}

function showInside(result) {
  grey($("input28"), result.input.map((v) => Math.round(v * 255)), 28, 28);
  const best = result.prediction;
  $("input-info").textContent = `predicted ${result.classes[best]} (${(100 * result.probs[best]).toFixed(1)}%)` +
    (result.label != null ? ` · label ${result.classes[result.label]}` : "") + ` · step ${result.iteration}`;
  later("probs", () => Plotly.react("chart-probs", [{ x: result.classes.map(String), y: result.probs, type: "bar" }],
    { title: { text: "softmax", font: { size: 13 } }, margin: MARGIN, xaxis: { type: "category" }, yaxis: { range: [0, 1] } }, PLOT),
    ["chart-probs"]);
  $("grad-label").value = result.label != null ? result.label : best;
  drawStrips(result.layers);
  if (lab.unit) showUnit(lab.unit.layer, lab.unit.unit);
}

function drawStrips(layers) {
  const strips = $("strips");
  strips.innerHTML = "";
  layers.forEach((layer, li) => {
    const block = document.createElement("div");
    block.className = "strip-block";
    const title = document.createElement("div");
    title.className = "strip-title";
    title.textContent = `${layer.name} · ${layer.units} units · ${layer.activation}`;
    const strip = document.createElement("div");
    strip.className = "strip";
    strip.dataset.layer = layer.name;
    const top = Math.max(...layer.a.map(Math.abs), 1e-12);
    layer.a.forEach((a, i) => {
      const cell = document.createElement("span");
      cell.className = "cell";
      const level = Math.round(255 * (1 - Math.min(Math.abs(a) / top, 1)));
      cell.style.background = a >= 0 ? `rgb(255,${level},${level})` : `rgb(${level},${level},255)`;
      cell.title = `${layer.name} unit ${i}: z=${layer.z[i].toFixed(4)}, a=${a.toFixed(4)}`;
      cell.addEventListener("click", () => showUnit(li + 1, i));
      strip.append(cell);
    });
    block.append(title, strip);
    strips.append(block);
  });
}

async function showUnit(layer, unit) {
  lab.unit = { layer, unit };
  try {
    const w = await api(`/api/unit?layer=${layer}&unit=${unit}`);
    lab.unitWeights = w;
    const values = lab.inspect ? lab.inspect.layers[layer - 1] : null;
    $("unit").hidden = false;
    $("unit-title").textContent = `${w.layer}, unit ${unit}`;
    $("unit-values").textContent = values ?
      `z = w·x + b = ${values.z[unit].toFixed(5)}   (b = ${w.bias.toFixed(5)})   ` +
      `activation = ${values.a[unit].toFixed(5)}` : `b = ${w.bias.toFixed(5)}`;
    const tile = $("unit-tile");
    tile.hidden = !w.tile;
    if (w.tile) grey(tile, w.tile, 28, 28);
    const list = $("unit-strongest");
    list.innerHTML = "";
    if (!w.tile) {
      const from = layer === 1 ? "pixel" : `fc${layer - 1} unit`;
      for (const [i, v] of w.strongest) {
        const item = document.createElement("li");
        item.textContent = `${from} ${i}: ${v >= 0 ? "+" : ""}${v.toFixed(4)}`;
        list.append(item);
      }
    }
  } catch (err) {
    showError("inside", err.message);
  }
}

// --- the math ----------------------------------------------------------------------------

async function gradCheck() {
  const input = lab.input || { test_index: Number($("test-index").value) };
  try {
    const result = await api("/api/gradcheck", { ...input, label: Number($("grad-label").value) });
    lab.gradcheck = result;
    const body = $("grad-table").querySelector("tbody");
    body.innerHTML = "";
    for (const l of result.layers) {
      const row = body.insertRow();
      for (const v of [l.name, l.shape.join("×"), l.hand_norm.toPrecision(8), l.autograd_norm.toPrecision(8),
        l.max_diff_weight.toExponential(2), l.max_diff_bias.toExponential(2)]) row.insertCell().textContent = v;
    }
    $("grad-table").hidden = false;
    const fmt = (v) => v.map((x) => x.toFixed(3)).join(", ");
    $("grad-output").innerHTML = "";
    const pre = document.createElement("pre");
    pre.textContent = `softmax(z_L) = [${fmt(result.output.probs)}]\n` +
      `onehot(y=${result.label})  = [${fmt(result.output.onehot)}]\n` +
      `δ_L          = [${fmt(result.output.delta)}]\nloss = ${result.loss.toFixed(6)}`;
    $("grad-output").append(pre);
    $("grad-summary").innerHTML = `Largest difference from autograd: <strong id="max-diff">` +
      `${result.max_diff.toExponential(2)}</strong> (${result.dtype}, step ${result.iteration})`;
  } catch (err) {
    showError("inside", err.message);
  }
}

// --- the build tab -----------------------------------------------------------------------

const FORM = ["dataset", "optimizer", "lr", "schedule", "batch_size", "epochs", "seed"];
const INPUT = { batch_size: "batch-size" };
const KEPT_ELSEWHERE = ["model", "preset", "out", "data_dir", "threads", "device", "name", "log"];
let extras = {}; // config fields the form has no control for (augment, ema, iterations, ...)

function hiddenWidths() {
  return [...document.querySelectorAll("#layers input")].map((i) => Number(i.value));
}

function addLayerRow(width) {
  const row = document.createElement("div");
  row.className = "layer-row";
  const input = document.createElement("input");
  input.type = "number"; input.min = "1"; input.step = "1"; input.value = width;
  input.setAttribute("aria-label", "hidden layer width");
  const remove = document.createElement("button");
  remove.type = "button"; remove.textContent = "−"; remove.title = "remove this layer";
  remove.addEventListener("click", () => { row.remove(); specFromControls(); });
  input.addEventListener("input", specFromControls);
  row.append(input, remove);
  $("layers").append(row);
}

function composeSpec() {
  const sizes = [784, ...hiddenWidths(), 10];
  const opts = [$("activation").value];
  const dropout = Number($("dropout").value);
  if (dropout) opts.push(`dropout=${dropout}`);
  if (extras.input_dropout) opts.push(`input_dropout=${extras.input_dropout}`);
  if ($("batch-norm").checked) opts.push("bn");
  return sizes.join("-") + ":" + opts.join(",");
}

function specFromControls() {
  $("spec").value = composeSpec();
  checkSpec();
}

async function checkSpec() {
  showError("model", "");
  try {
    const spec = await api("/api/spec?text=" + encodeURIComponent($("spec").value));
    drawDiagram(spec);
    return spec;
  } catch (err) {
    showError("model", err.message);
    return null;
  }
}

function controlsFromSpec(spec) {
  $("layers").innerHTML = "";
  spec.sizes.slice(1, -1).forEach(addLayerRow);
  $("activation").value = spec.activation;
  $("dropout").value = spec.dropout;
  $("batch-norm").checked = spec.batch_norm;
  if (spec.input_dropout) extras.input_dropout = spec.input_dropout;
}

async function specTyped() {
  const spec = await checkSpec();
  if (spec) controlsFromSpec(spec);
}

function setForm(values) {
  for (const name of FORM) {
    if (values[name] !== undefined && values[name] !== null) $(INPUT[name] || name).value = values[name];
  }
}

function formValues() {
  const out = { model: $("spec").value.trim() };
  for (const name of FORM) {
    const raw = $(INPUT[name] || name).value;
    out[name] = ["dataset", "optimizer", "schedule"].includes(name) ? raw : Number(raw);
  }
  const kept = { ...extras };
  if (kept.iterations != null && "epochs" in out) delete kept.iterations; // the form's length wins
  return { ...kept, ...out };
}

function formFromConfig(config) {
  setForm(config);
  extras = {};
  for (const [k, v] of Object.entries(config)) {
    if (FORM.includes(k) || KEPT_ELSEWHERE.includes(k)) continue;
    if (JSON.stringify(v) !== JSON.stringify(lab.choices.defaults[k])) extras[k] = v;
  }
  showExtras("the drawn run");
  $("spec").value = config.model || lab.choices.presets[config.preset || "quickstart-512"].spec;
  specTyped();
}

function showExtras(source) {
  $("extras").textContent = Object.keys(extras).length ?
    `Also from ${source}: ` + Object.entries(extras).map(([k, v]) => `${k}=${v}`).join(", ") : "";
}

function startFrom(name) {
  if (!name) return;
  const [kind, key] = name.split(":");
  extras = {};
  if (kind === "preset") {
    $("spec").value = lab.choices.presets[key].spec;
  } else {
    const train = lab.choices.recipes[key].train;
    for (const [k, v] of Object.entries(train)) {
      if (!FORM.includes(k) && k !== "model" && k !== "preset") extras[k] = v;
    }
    setForm({ ...lab.choices.defaults, ...train });
    $("spec").value = train.model || lab.choices.presets[train.preset || "quickstart-512"].spec;
  }
  showExtras(key);
  specTyped();
}

function drawDiagram(spec) {
  const svg = $("diagram");
  const W = 560, H = 220, shown = 10;
  const sizes = spec.sizes;
  const xs = sizes.map((_, i) => 40 + (i * (W - 80)) / Math.max(sizes.length - 1, 1));
  const nodes = sizes.map((n, i) => {
    const k = Math.min(n, shown);
    return Array.from({ length: k }, (_, j) => [xs[i], 30 + ((j + 0.5) * (H - 70)) / k]);
  });
  let out = "";
  for (let i = 0; i + 1 < nodes.length; i++) {
    for (const [x1, y1] of nodes[i]) for (const [x2, y2] of nodes[i + 1]) {
      out += `<line x1="${x1}" y1="${y1}" x2="${x2}" y2="${y2}" class="edge"/>`;
    }
  }
  nodes.forEach((col, i) => {
    for (const [x, y] of col) out += `<circle cx="${x}" cy="${y}" r="6" class="node"/>`;
    const label = i === 0 ? "input" : i === sizes.length - 1 ? "output" : `fc${i}`;
    out += `<text x="${xs[i]}" y="${H - 24}" class="size">${sizes[i]}${sizes[i] > shown ? " …" : ""}</text>`;
    out += `<text x="${xs[i]}" y="${H - 8}" class="label">${label}</text>`;
  });
  svg.innerHTML = out;
  $("param-count").textContent = spec.parameters.toLocaleString("en") + " parameters";
  $("spec-text").textContent = spec.text;
}

// --- wiring ------------------------------------------------------------------------------

const VARY = ["activation", "hidden", "dropout", "lr", "optimizer", "batch_size", "init",
  "weight_decay", "momentum", "schedule", "dataset", "train_size", "seed", "epochs", "iterations"];

function parseValue(text) {
  const t = text.trim();
  if (t === "true" || t === "false") return t === "true";
  const n = Number(t);
  return t !== "" && !Number.isNaN(n) && !["hidden"].includes($("vary-setting").value) ? n : t;
}

async function addRun() {
  const value = parseValue($("vary-value").value);
  await post("/api/vary", { setting: $("vary-setting").value, value }, "vary");
}

// The details start closed: a tab opens on a click and closes on a second one. While the
// weights tab is open the page asks the lab for snapshots (tiles, histograms, norms), which it
// otherwise does not compute; the browser and the lab share the machine with training.
let watching = 0;

function showTab(id) {
  const open = $(id).hidden ? id : null;
  document.querySelectorAll(".tabs button").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.tab === open)));
  document.querySelectorAll(".tab").forEach((t) => { t.hidden = t.id !== open; });
  if (open) for (const chart of $(open).querySelectorAll(".chart")) if (chart.data) Plotly.Plots.resize(chart);
  clearInterval(watching);
  if (open === "tab-weights") {
    const watch = () => api("/api/watch", { snapshot: true }).catch(() => {});
    watch();
    watching = setInterval(watch, 10000);
  }
  schedule();
}

async function followLink(query) {
  // The address bar is the experiment: a link that is not what the lab runs builds it.
  if (!/^(experiment|runs)=/.test(query) || query === lab.link) return;
  await post("/api/experiment", { link: query });
}

async function main() {
  const arrived = location.search.slice(1); // the link this page was opened with
  for (const id of ["network", "chart-loss", "chart-acc", "runs-table", "tiles", "chart-norms",
    "chart-dead", "chart-hist", "chart-confusion", "chart-probs"]) watcher.observe($(id));
  lab.choices = await api("/api/choices");
  const catalog = (await api("/api/experiments")).experiments;
  $("experiment").add(new Option("your own runs", ""));
  for (const e of catalog) $("experiment").add(new Option(e.title, e.name));
  fill($("dataset"), lab.choices.datasets);
  fill($("activation"), lab.choices.activations);
  fill($("optimizer"), lab.choices.optimizers);
  fill($("schedule"), lab.choices.schedules);
  fill($("vary-setting"), VARY);
  for (const name of Object.keys(lab.choices.presets)) $("start-from").add(new Option("preset " + name, "preset:" + name));
  for (const name of Object.keys(lab.choices.recipes)) $("start-from").add(new Option("recipe " + name, "recipe:" + name));
  for (const id of ["dataset", "optimizer", "lr", "schedule", "batch-size", "epochs", "seed"]) {
    $(id).addEventListener("change", () => { lab.formTouched = true; });
  }
  for (const id of ["activation", "dropout", "batch-norm"]) {
    $(id).addEventListener("change", () => { lab.formTouched = true; specFromControls(); });
  }
  $("spec").addEventListener("change", () => { lab.formTouched = true; specTyped(); });
  $("start-from").addEventListener("change", (e) => { lab.formTouched = true; startFrom(e.target.value); });
  $("add-layer").addEventListener("click", () => { addLayerRow(128); lab.formTouched = true; specFromControls(); });
  $("build-run").addEventListener("click", () => { lab.formTouched = false; post("/api/build", formValues(), "build"); });
  $("extend").addEventListener("click", () => post("/api/extend", { epochs: Number($("epochs").value) }, "build"));
  $("experiment").addEventListener("change", (e) => {
    if (e.target.value) post("/api/experiment", { experiment: e.target.value });
  });
  for (const action of ["play", "pause", "step", "reset"]) $(action).addEventListener("click", () => post("/api/control", { action }));
  $("set-lr").addEventListener("click", async () => {
    const r = await post("/api/lr", { lr: Number($("live-lr").value) }, "live-lr");
    if (r) $("live-lr").value = +r.lr.toPrecision(4);
  });
  $("vary-add").addEventListener("click", addRun);
  $("copy-link").addEventListener("click", () => navigator.clipboard && navigator.clipboard.writeText(location.href));
  $("pick-test").addEventListener("click", () => pickTest(Number($("test-index").value)));
  $("random-test").addEventListener("click", () => {
    const focus = lab.byId[lab.focus];
    pickTest(Math.floor(Math.random() * ((focus && focus.test_size) || 1)));
  });
  $("clear").addEventListener("click", clearPad);
  $("gradcheck").addEventListener("click", gradCheck);
  $("grad-label").addEventListener("change", () => { lab.labelTouched = true; });
  $("network").addEventListener("mouseover", (e) => { if (e.target.classList.contains("unit")) hoverUnit(e.target); });
  $("hist-layer").addEventListener("change", drawHistogram);
  document.querySelectorAll(".tabs button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  clearPad();
  Plotly.newPlot("chart-confusion", [], { margin: { l: 70, r: 10, t: 10, b: 60 } }, PLOT);
  await loadState();
  await followLink(arrived);
  $("chart-confusion").on("plotly_click", (event) => {
    const p = event.points[0];
    showCell(lab.classes.map(String).indexOf(String(p.y)), lab.classes.map(String).indexOf(String(p.x)));
  });
  document.body.dataset.ready = "true";
}

main().catch((err) => showError("general", String(err.message || err)));
