// The lab's page: wires the server's JSON and its event stream to the form, plotly's charts,
// canvases and the layer strips. The server does the work; nothing is computed here but
// colours and layout.
"use strict";

const $ = (id) => document.getElementById(id);
const lab = (window.lab = { iteration: 0, config: null, classes: [], choices: null });
const PLOT = { displayModeBar: false, responsive: true };
const MARGIN = { l: 50, r: 10, t: 30, b: 40 };
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

// --- the build form ----------------------------------------------------------------------

const FORM = ["dataset", "optimizer", "lr", "schedule", "batch_size", "epochs", "seed"];
const INPUT = { batch_size: "batch-size" };
let extras = {}; // recipe fields the form has no control for (augment, ema, ...)

function fill(select, values) {
  select.innerHTML = "";
  for (const v of values) select.add(new Option(v, v));
}

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
  const opts = [];
  if (sizes.length > 2 || $("activation").value !== "relu") opts.push($("activation").value);
  const dropout = Number($("dropout").value);
  if (dropout) opts.push(`dropout=${dropout}`);
  if (extras.input_dropout) opts.push(`input_dropout=${extras.input_dropout}`);
  if ($("batch-norm").checked) opts.push("bn");
  return sizes.join("-") + (opts.length ? ":" + opts.join(",") : "");
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
    saveToUrl();
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
  return { ...extras, ...out };
}

function saveToUrl() {
  const params = new URLSearchParams();
  const values = formValues();
  for (const [k, v] of Object.entries(values)) params.set(k, v);
  if ($("start-from").value) params.set("from", $("start-from").value);
  history.replaceState(null, "", "?" + params.toString());
}

function loadFromUrl() {
  const params = new URLSearchParams(location.search);
  if (!params.has("model")) return false;
  const values = {};
  for (const [k, v] of params) values[k] = v;
  setForm(values);
  extras = {};
  for (const [k, v] of Object.entries(values)) {
    if (!FORM.includes(k) && k !== "model" && k !== "from") extras[k] = parseValue(v);
  }
  if (values.from) $("start-from").value = values.from;
  $("spec").value = values.model;
  specTyped();
  return true;
}

function parseValue(text) {
  if (text === "true" || text === "false") return text === "true";
  const n = Number(text);
  return text !== "" && !Number.isNaN(n) ? n : text;
}

// Fields the form has no control for, which a rebuild must keep: those that differ from the
// defaults, less the ones the lab's own command line sets.
const KEPT_ELSEWHERE = ["model", "preset", "out", "data_dir", "threads", "device"];

function formFromConfig(config) {
  setForm(config);
  extras = {};
  for (const [k, v] of Object.entries(config)) {
    if (FORM.includes(k) || KEPT_ELSEWHERE.includes(k)) continue;
    if (JSON.stringify(v) !== JSON.stringify(lab.choices.defaults[k])) extras[k] = v;
  }
  showExtras("the run");
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
  if (kind === "preset") {
    extras = {};
    $("spec").value = lab.choices.presets[key].spec;
  } else {
    const train = lab.choices.recipes[key].train;
    extras = {};
    for (const [k, v] of Object.entries(train)) {
      if (FORM.includes(k)) continue;
      if (k !== "model" && k !== "preset") extras[k] = v;
    }
    setForm({ ...lab.choices.defaults, ...train });
    $("spec").value = train.model || lab.choices.presets[train.preset || "quickstart-512"].spec;
  }
  showExtras(key);
  specTyped();
}

async function buildRun() {
  clearErrors();
  try {
    await api("/api/build", formValues());
  } catch (err) {
    showError(err.field || "general", err.message);
  }
}

async function extendRun() {
  clearErrors();
  try {
    await api("/api/extend", { epochs: Number($("epochs").value) });
  } catch (err) {
    showError(err.field || "general", err.message);
  }
}

// --- the diagram -------------------------------------------------------------------------

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

// --- live: state and events --------------------------------------------------------------

function lossChart(curve) {
  lossPoints = { x: [], y: [] };
  pending.delete("loss");
  Plotly.react("chart-loss", [{
    x: curve.map((p) => p[0]), y: curve.map((p) => p[1]), mode: "lines", name: "training loss",
  }], { title: { text: "training loss" }, margin: MARGIN, xaxis: { title: { text: "step" } },
    yaxis: { type: "log" } }, PLOT);
}

function accChart(evals) {
  const trace = (key, name) => ({
    x: evals.filter((e) => e[key] != null).map((e) => e.iteration),
    y: evals.filter((e) => e[key] != null).map((e) => e[key]), mode: "lines+markers", name,
  });
  const every = lab.evalEvery ? ` · every ${lab.evalEvery} steps` : "";
  Plotly.react("chart-acc", [trace("test_accuracy", "test"), trace("val_accuracy", "validation")],
    { title: { text: "accuracy (%)" + every }, margin: MARGIN, xaxis: { title: { text: "step" } },
      legend: { orientation: "h", y: -0.3 } }, PLOT);
}

function onBegin(data) {
  lab.config = data.config;
  lab.classes = data.classes;
  lab.total = data.total;
  lab.testSize = data.test_size;
  lab.evalEvery = data.eval_every;
  $("total").textContent = data.total;
  $("run-info").textContent = `${data.spec.text} on ${data.config.dataset} · ${data.engine} engine · ` +
    (data.run_dir ? data.run_dir : "not saved until its first step");
  fill($("grad-label"), data.classes.map((_, i) => i));
  $("grad-label").querySelectorAll("option").forEach((o, i) => { o.textContent = data.classes[i]; });
  fill($("hist-layer"), data.spec.sizes.slice(1).map((_, i) => `fc${i + 1}`));
  lab.evals = [];
  lossChart([]);
  accChart([]);
  if (!lab.formTouched) formFromConfig(data.config);
}

function onStatus(data) {
  lab.status = data.status;
  lab.iteration = data.iteration;
  $("iteration").textContent = data.iteration;
  $("total").textContent = data.total;
  $("epoch").textContent = data.epoch;
  $("status").textContent = data.status;
  if (data.status !== "playing") $("speed").textContent = "";
  $("message").textContent = data.message ? "· " + data.message : "";
  if (data.lr != null && document.activeElement !== $("live-lr")) $("live-lr").value = +data.lr.toPrecision(4);
  if (data.run_dir) $("run-info").textContent = $("run-info").textContent.replace(
    "not saved until its first step", data.run_dir);
  document.body.dataset.status = data.status;
}

// Drawing waits for the next frame, at most every DRAW_EVERY ms, draws only the newest of each
// kind, and only into charts that are on screen (the rest wait until scrolled to): the
// browser shares the machine with training, so a picture nobody sees is not drawn.
const DRAW_EVERY = 200;
const pending = new Map(); // kind -> [draw, the ids of the elements it draws into]
const onScreen = new Set();
let drawTimer = 0;
let lossPoints = { x: [], y: [] };

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

function onMetrics(data) {
  onMetricsText(data);
  if (data.train_loss == null) return;
  lossPoints.x.push(data.iteration);
  lossPoints.y.push(data.train_loss);
  later("loss", () => {
    Plotly.extendTraces("chart-loss", { x: [lossPoints.x], y: [lossPoints.y] }, [0]);
    lossPoints = { x: [], y: [] };
  }, ["chart-loss"]);
}

function onMetricsText(data) {
  lab.iteration = data.iteration;
  $("iteration").textContent = data.iteration;
  $("epoch").textContent = data.epoch;
  if (data.steps_per_second) $("speed").textContent = `· ${data.steps_per_second} steps/s`;
  if (document.activeElement !== $("live-lr")) $("live-lr").value = +data.lr.toPrecision(4);
}

function onEval(data) {
  lab.evals.push(data);
  later("eval", () => accChart(lab.evals), ["chart-acc"]);
}

function onSnapshot(data) {
  lab.snapshot = data;
  later("tiles", () => drawTiles(data.tiles), ["tiles"]);
  later("norms", () => drawNorms(data), ["chart-norms", "chart-dead"]);
  later("histogram", drawHistogram, ["chart-hist"]);
}

function drawNorms(data) {
  const names = data.layers.map((l) => l.name);
  Plotly.react("chart-norms", [
    { x: names, y: data.layers.map((l) => l.weight_norm), type: "bar", name: "‖W‖" },
    { x: names, y: data.layers.map((l) => l.grad_norm), type: "bar", name: "‖∇W‖", yaxis: "y2" },
  ], { title: { text: "weight and gradient norms" }, margin: { ...MARGIN, r: 50 }, barmode: "group",
    yaxis2: { overlaying: "y", side: "right" }, legend: { orientation: "h", y: -0.2 } }, PLOT);
  const hidden = data.layers.filter((l) => l.dead != null);
  Plotly.react("chart-dead", [{
    x: hidden.map((l) => l.name), y: hidden.map((l) => 100 * l.dead), type: "bar",
  }], { title: { text: hidden.length ? "dead ReLUs (%)" : "dead ReLUs: ReLU nets only" },
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
  Plotly.react("chart-hist", traces, { title: { text: `${layer.name}: weights and gradients` },
    grid: { rows: 1, columns: 2, pattern: "independent" }, margin: MARGIN, showlegend: false }, PLOT);
}

function onConfusion(data) {
  lab.confusion = data;
  later("confusion", () => drawConfusion(data), ["chart-confusion"]);
}

function drawConfusion(data) {
  const total = data.matrix.flat().reduce((a, b) => a + b, 0);
  $("confusion-info").textContent = `(step ${data.iteration}: ${data.accuracy.toFixed(2)}% of ${total})`;
  const names = lab.classes.map(String);
  Plotly.react("chart-confusion", [{
    z: data.matrix.map((row) => row.map((v) => (v ? Math.log10(v + 1) : 0))), x: names, y: names,
    text: data.matrix, texttemplate: "%{text}", type: "heatmap", showscale: false,
    colorscale: [[0, "#ffffff"], [0.35, "#c6dbef"], [1, "#08306b"]],
    hovertemplate: "true %{y}, predicted %{x}: %{text}<extra></extra>",
  }], { margin: { l: 70, r: 10, t: 10, b: 60 }, xaxis: { title: { text: "predicted" } },
    yaxis: { title: { text: "true" }, autorange: "reversed" } }, PLOT);
}

function grey(canvas, bytes, width, height, scale) {
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(width, height);
  for (let i = 0; i < width * height; i++) {
    image.data.set([bytes[i], bytes[i], bytes[i], 255], 4 * i);
  }
  if (!scale) { ctx.putImageData(image, 0, 0); return; }
  const tmp = document.createElement("canvas");
  tmp.width = width; tmp.height = height;
  tmp.getContext("2d").putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tmp, 0, 0, width * scale, height * scale);
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

const HANDLERS = { begin: onBegin, status: onStatus, metrics: onMetrics, eval: onEval,
  snapshot: onSnapshot, confusion: onConfusion };

async function loadState() {
  const state = await api("/api/state");
  if (state.begin) onBegin(state.begin);
  lossChart(state.curve);
  lab.evals = state.evals;
  accChart(state.evals);
  if (state.status) onStatus(state.status);
  if (state.metrics && state.metrics.iteration > lab.iteration) onMetricsText(state.metrics);
  if (state.snapshot) onSnapshot(state.snapshot);
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

// --- look inside -------------------------------------------------------------------------

const pad = $("pad");
const pen = pad.getContext("2d");
let drawing = false, last = null, drawn = false;

function clearPad() {
  pen.fillStyle = "#000";
  pen.fillRect(0, 0, pad.width, pad.height);
  drawn = false;
}

function point(event) {
  const r = pad.getBoundingClientRect();
  return { x: ((event.clientX - r.left) * pad.width) / r.width,
           y: ((event.clientY - r.top) * pad.height) / r.height };
}

pad.addEventListener("pointerdown", (event) => {
  drawing = true; drawn = true;
  last = point(event);
  pad.setPointerCapture(event.pointerId);
  pen.fillStyle = "#fff";
  pen.beginPath(); pen.arc(last.x, last.y, 9, 0, 2 * Math.PI); pen.fill();
});
pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const p = point(event);
  Object.assign(pen, { strokeStyle: "#fff", lineWidth: 18, lineCap: "round", lineJoin: "round" });
  pen.beginPath(); pen.moveTo(last.x, last.y); pen.lineTo(p.x, p.y); pen.stroke();
  last = p;
});
function endStroke() {
  if (!drawing) return;
  drawing = false;
  lookInside({ png: pad.toDataURL("image/png") });
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

async function lookInside(input) {
  showError("inside", "");
  try {
    const result = await api("/api/inspect", input);
    lab.input = input.png ? { pixels: result.input } : input;
    lab.inspect = result;
    showInside(result);
  } catch (err) {
    showError("inside", err.message);
  }
}

function showInside(result) {
  grey($("input28"), result.input.map((v) => Math.round(v * 255)), 28, 28);
  const best = result.prediction;
  $("input-info").textContent = `predicted ${result.classes[best]} (${(100 * result.probs[best]).toFixed(1)}%)` +
    (result.label != null ? ` · label ${result.classes[result.label]}` : "") + ` · step ${result.iteration}`;
  Plotly.react("chart-probs", [{ x: result.classes.map(String), y: result.probs, type: "bar" }],
    { title: { text: "softmax" }, margin: MARGIN, xaxis: { type: "category" }, yaxis: { range: [0, 1] } }, PLOT);
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
      cell.style.background = a >= 0 ? `rgb(${level},${level},255)` : `rgb(255,${level},${level})`;
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

async function pickTest(index) {
  $("test-index").value = index;
  clearPad();
  lookInside({ test_index: index });
}

// --- the confusion cell ------------------------------------------------------------------

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

// --- the math ----------------------------------------------------------------------------

async function gradCheck() {
  if (!lab.input) { showError("inside", "draw a digit or pick a test image first"); return; }
  try {
    const result = await api("/api/gradcheck", { ...lab.input, label: Number($("grad-label").value) });
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

// --- wiring ------------------------------------------------------------------------------

async function control(action) {
  try { await api("/api/control", { action }); } catch (err) { showError("general", err.message); }
}

async function setLr() {
  showError("live-lr", "");
  try {
    const r = await api("/api/lr", { lr: Number($("live-lr").value) });
    $("live-lr").value = +r.lr.toPrecision(4);
  } catch (err) {
    showError("live-lr", err.message);
  }
}

async function main() {
  for (const id of ["chart-loss", "chart-acc", "tiles", "chart-norms", "chart-dead", "chart-hist",
    "chart-confusion"]) watcher.observe($(id));
  lab.choices = await api("/api/choices");
  fill($("dataset"), lab.choices.datasets);
  fill($("activation"), lab.choices.activations);
  fill($("optimizer"), lab.choices.optimizers);
  fill($("schedule"), lab.choices.schedules);
  for (const name of Object.keys(lab.choices.presets)) $("start-from").add(new Option("preset " + name, "preset:" + name));
  for (const name of Object.keys(lab.choices.recipes)) $("start-from").add(new Option("recipe " + name, "recipe:" + name));
  lab.formTouched = loadFromUrl();
  for (const id of ["dataset", "optimizer", "lr", "schedule", "batch-size", "epochs", "seed"]) {
    $(id).addEventListener("change", () => { lab.formTouched = true; saveToUrl(); });
  }
  for (const id of ["activation", "dropout", "batch-norm"]) {
    $(id).addEventListener("change", () => { lab.formTouched = true; specFromControls(); });
  }
  $("spec").addEventListener("change", () => { lab.formTouched = true; specTyped(); });
  $("start-from").addEventListener("change", (e) => { lab.formTouched = true; startFrom(e.target.value); });
  $("add-layer").addEventListener("click", () => { addLayerRow(128); lab.formTouched = true; specFromControls(); });
  $("build-run").addEventListener("click", buildRun);
  $("reset").addEventListener("click", buildRun);
  $("extend").addEventListener("click", extendRun);
  $("play").addEventListener("click", () => control("play"));
  $("pause").addEventListener("click", () => control("pause"));
  $("step").addEventListener("click", () => control("step"));
  $("set-lr").addEventListener("click", setLr);
  $("clear").addEventListener("click", clearPad);
  $("random-test").addEventListener("click", () => pickTest(Math.floor(Math.random() * (lab.testSize || 1))));
  $("pick-test").addEventListener("click", () => pickTest(Number($("test-index").value)));
  $("gradcheck").addEventListener("click", gradCheck);
  $("hist-layer").addEventListener("change", drawHistogram);
  clearPad();
  Plotly.newPlot("chart-confusion", [], { margin: { l: 70, r: 10, t: 10, b: 60 } }, PLOT);
  await loadState();
  $("chart-confusion").on("plotly_click", (event) => {
    const p = event.points[0];
    showCell(lab.classes.map(String).indexOf(String(p.y)), lab.classes.map(String).indexOf(String(p.x)));
  });
  document.body.dataset.ready = "true";
}

main().catch((err) => showError("general", String(err.message || err)));
