// The drawing page: strokes on a 280x280 canvas are sent as a PNG to /api/predict while
// drawing (at most one request in flight), and the answer fills the bars and the 28x28 view.
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const seen = document.getElementById("seen").getContext("2d");
const bars = document.getElementById("bars");
let classes = [];
let drawing = false;
let last = null;
let inFlight = false;
let pending = false;

function clearPad() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
  seen.clearRect(0, 0, 28, 28);
  showProbabilities(null);
}

function buildBars() {
  bars.innerHTML = "";
  classes.forEach((name, i) => {
    const row = document.createElement("div");
    row.className = "bar";
    row.setAttribute("role", "listitem");
    row.dataset.index = i;
    row.innerHTML = '<span class="label"></span><span class="track"><span class="fill">' +
      '</span></span><span class="value">0.0%</span>';
    row.querySelector(".label").textContent = name;
    bars.appendChild(row);
  });
}

function showProbabilities(result) {
  const rows = bars.querySelectorAll(".bar");
  const probs = result ? result.probabilities : classes.map(() => 0);
  const top = result ? result.top.index : -1;
  rows.forEach((row, i) => {
    row.querySelector(".fill").style.width = (probs[i] * 100).toFixed(1) + "%";
    row.querySelector(".value").textContent = (probs[i] * 100).toFixed(1) + "%";
    row.dataset.probability = probs[i];
    row.classList.toggle("top", i === top);
  });
  document.getElementById("top-class").textContent = result ? result.top.class : "–";
  document.getElementById("top-prob").textContent =
    result ? "(" + (result.top.probability * 100).toFixed(1) + "%)" : "";
  document.getElementById("latency").textContent =
    result ? "server latency " + result.latency_ms.toFixed(1) + " ms" : "";
}

function showInput(pixels) {
  const image = seen.createImageData(28, 28);
  pixels.forEach((v, i) => {
    const g = Math.round(v * 255);
    image.data.set([g, g, g, 255], i * 4);
  });
  seen.putImageData(image, 0, 0);
}

async function send(body, type) {
  const headers = type ? { "Content-Type": type } : {};
  const response = await fetch("/api/predict", { method: "POST", body, headers });
  const result = await response.json();
  if (!response.ok) throw new Error(result.error || response.statusText);
  return result;
}

async function predictPad() {
  if (inFlight) { pending = true; return; }
  inFlight = true;
  try {
    const blob = await new Promise((resolve) => pad.toBlob(resolve, "image/png"));
    const result = await send(blob, "image/png");
    document.getElementById("error").textContent = "";
    showProbabilities(result);
    showInput(result.input);
  } catch (err) {
    document.getElementById("error").textContent = String(err.message || err);
  } finally {
    inFlight = false;
    if (pending) { pending = false; predictPad(); }
  }
}

function point(event) {
  const r = pad.getBoundingClientRect();
  return { x: (event.clientX - r.left) * pad.width / r.width,
           y: (event.clientY - r.top) * pad.height / r.height };
}

pad.addEventListener("pointerdown", (event) => {
  drawing = true;
  last = point(event);
  pad.setPointerCapture(event.pointerId);
  ctx.fillStyle = "#fff";
  ctx.beginPath();
  ctx.arc(last.x, last.y, 9, 0, 2 * Math.PI);
  ctx.fill();
});
pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const p = point(event);
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = 18;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(last.x, last.y);
  ctx.lineTo(p.x, p.y);
  ctx.stroke();
  last = p;
  predictPad();
});
function endStroke() {
  if (!drawing) return;
  drawing = false;
  predictPad();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

document.getElementById("clear").addEventListener("click", clearPad);
document.getElementById("upload").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  try {
    const result = await send(form, null);
    document.getElementById("error").textContent = "";
    showProbabilities(result);
    showInput(result.input);
  } catch (err) {
    document.getElementById("error").textContent = String(err.message || err);
  }
  event.target.value = "";
});

fetch("/api/model").then((r) => r.json()).then((model) => {
  classes = model.classes;
  const acc = model.test_accuracy == null ? "unknown" : model.test_accuracy.toFixed(2) + "%";
  document.getElementById("model-info").textContent =
    model.spec + " trained on " + model.dataset + " · test accuracy " + acc;
  buildBars();
  clearPad();
  document.body.dataset.ready = "true";
});
