// The demo page: one image in, the model's result and bicubic (or another model) side by side
// behind a split slider, a pixel loupe, timings from the server and a download. No framework,
// no build step: the server hands this file out as it is.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  info: null,       // /api/info: models, reference, limits
  file: null,       // the chosen image (a File)
  results: new Map(), // "id@scale" -> {url, name, timing, input, output}
  generation: 0,    // bumped by every new file or setting: late answers for older ones are dropped
  point: [0.5, 0.5], // loupe centre, as fractions of the image
};
const RETRIES = 5;

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
const mb = (n) => `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)} MB`;
const mp = (n) => `${(n / 1e6).toFixed(1)} MP`;

function models() {
  return [...state.info.models, state.info.reference];
}
function byId(id) {
  return models().find((m) => m.id === id);
}
function label(m) {
  if (m.id === state.info.reference.id) return "bicubic (MATLAB)";
  const others = state.info.models.filter((o) => o.name === m.name);
  return others.length > 1 ? `${m.name} · ${m.file}` : m.name;
}

// -- messages ------------------------------------------------------------------------------

function setStatus(text, busy = false) {
  $("status").textContent = text;
  $("status").classList.toggle("busy", busy);
}
function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

// -- model choice --------------------------------------------------------------------------

function option(value, text) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  return o;
}

function describe(m) {
  const facts = [
    ["file", m.file],
    ["scale", `×${m.scale}` + (m.scales.length > 1 ? ` (also ${m.scales.filter((s) => s !== m.scale).map((s) => "×" + s).join(", ")})` : "")],
    ["precision", m.precision.toUpperCase()],
    ["runtime", `${m.runtime} · ${m.device}`],
    ["input", m.input === "lr" ? "low-res image (bicubic inside the model)" : "bicubic-upscaled image"],
  ];
  const psnr = m.psnr && m.psnr.Set5 && m.psnr.Set5[String(m.scale)];
  if (psnr) facts.push(["Set5 PSNR", `${Number(psnr).toFixed(2)} dB (source model, ×${m.scale})`]);
  const dl = $("model-info");
  dl.replaceChildren();
  for (const [k, v] of facts) {
    const div = document.createElement("div");
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = k;
    dd.textContent = v;
    div.append(dt, dd);
    dl.append(div);
  }
}

function fillScales() {
  const m = byId($("model").value);
  const keep = Number($("scale").value) || m.scale;
  $("scale").replaceChildren(...m.scales.map((s) => option(s, `×${s}`)));
  $("scale").value = m.scales.includes(keep) ? keep : m.scale;
  $("scale").disabled = m.scales.length < 2;
}

function fillChoices() {
  $("model").replaceChildren(...state.info.models.map((m) => option(m.id, label(m))));
  $("left").replaceChildren(...models().map((m) => option(m.id, label(m))));
  $("left").value = state.info.reference.id;
  $("model").disabled = state.info.models.length < 2;
  fillScales();
  describe(byId($("model").value));
  const lim = state.info.limits;
  $("limits-line").textContent =
    `PNG, JPEG, WebP, BMP, TIFF or GIF · up to ${mb(lim.max_upload)} and ${mp(lim.max_pixels)}` +
    ` · result up to ${mp(lim.max_output_pixels)}`;
  $("version").textContent = state.info.version;
}

// -- talking to the server -----------------------------------------------------------------

function parseTiming(header) {
  const out = {};
  for (const part of (header || "").split(",")) {
    const m = part.trim().match(/^([\w-]+);dur=([\d.]+)/);
    if (m) out[m[1]] = Number(m[2]) / 1000;
  }
  return out;
}

async function upscale(id, scale, generation) {
  const key = `${id}@${scale}`;
  if (state.results.has(key)) return state.results.get(key);
  const file = state.file;
  for (let attempt = 0; ; attempt++) {
    let r;
    try {
      r = await fetch(`api/upscale?model=${encodeURIComponent(id)}&scale=${scale}`, { method: "POST", body: file });
    } catch (e) {
      throw new Error(`The server did not answer (${e.message}). Is edgesr demo still running?`);
    }
    if (generation !== state.generation) return null;
    if (r.status === 503 && attempt < RETRIES) {
      const wait = Math.max(1, Number(r.headers.get("Retry-After")) || 2);
      setStatus(`The server is busy; trying again in ${wait} s…`, true);
      await sleep(wait * 1000);
      if (generation !== state.generation) return null;
      setStatus(`Upscaling ${file.name} ×${scale}…`, true);
      continue;
    }
    if (!r.ok) {
      const text = (await r.text()).trim();
      throw new Error(text ? text.charAt(0).toUpperCase() + text.slice(1) + "." : `The server answered ${r.status}.`);
    }
    const blob = await r.blob();
    if (generation !== state.generation) return null;
    const res = {
      id, scale, url: URL.createObjectURL(blob), bytes: blob.size,
      timing: parseTiming(r.headers.get("Server-Timing")),
      input: r.headers.get("X-Edgesr-Input"), output: r.headers.get("X-Edgesr-Output"),
    };
    state.results.set(key, res);
    return res;
  }
}

function forget() {
  for (const res of state.results.values()) URL.revokeObjectURL(res.url);
  state.results.clear();
}

async function run() {
  if (!state.file) return;
  const generation = ++state.generation;
  const scale = Number($("scale").value);
  const right = $("model").value;
  const left = $("left").value;
  showError("");
  setStatus(`Upscaling ${state.file.name} ×${scale}…`, true);
  try {
    const a = await upscale(right, scale, generation);  // the model first: it is what people came for
    const b = a && (await upscale(left, scale, generation));
    if (!b || generation !== state.generation) return;
    await show(b, a);
    setStatus(`Done: ${state.file.name}, ${a.input} → ${a.output}.`);
  } catch (e) {
    if (generation !== state.generation) return;
    setStatus("");
    showError(e.message);
  }
}

// -- showing results -----------------------------------------------------------------------

function loaded(img, url) {
  img.src = url;
  return img.decode().catch(() => {});
}

function timingLine(res) {
  const t = res.timing;
  const total = (t.decode || 0) + (t.model || 0) + (t.encode || 0);
  const parts = [`model ${t.model?.toFixed(2)} s`, `decode ${t.decode?.toFixed(2)} s`, `encode ${t.encode?.toFixed(2)} s`];
  if (t.queue > 0.05) parts.push(`waited ${t.queue.toFixed(2)} s for a worker`);
  return `${label(byId(res.id))}: ${total.toFixed(2)} s on the server (${parts.join(", ")}), ${mb(res.bytes)} PNG`;
}

function downloadName(res) {
  const stem = state.file.name.replace(/\.[^.]+$/, "") || "image";
  const several = state.info.models.length > 1 || res.id === state.info.reference.id;
  return `${stem}_x${res.scale}${several ? "_" + res.id : ""}.png`;
}

async function show(left, right) {
  $("result").hidden = false;
  await Promise.all([loaded($("img-left"), left.url), loaded($("img-right"), right.url)]);
  // small results are enlarged by a whole number, pixelated (a blur would hide the difference);
  // large ones fit the width
  const w = $("img-right").naturalWidth;
  const k = Math.max(1, Math.floor(Math.min($("result").clientWidth, 720) / w));
  $("stage").style.maxWidth = `${w * k}px`;
  $("compare").classList.toggle("pixelated", k > 1);
  $("img-left").alt = `${label(byId(left.id))} result`;
  $("img-right").alt = `${label(byId(right.id))} result`;
  $("label-left").textContent = `◀ ${label(byId(left.id))}`;
  $("label-right").textContent = `${label(byId(right.id))} ▶`;
  $("cap-left").textContent = label(byId(left.id));
  $("cap-right").textContent = label(byId(right.id));
  $("sizes").textContent = `${right.input} → ${right.output} (×${right.scale})`;
  $("timing").replaceChildren(...[right, left].map((res) => {
    const li = document.createElement("li");
    li.textContent = timingLine(res);
    return li;
  }));
  const a = $("download");
  a.href = right.url;
  a.download = downloadName(right);
  a.textContent = `Download ${label(byId(right.id))} result (PNG)`;
  split(Number($("split").value));
  drawLoupe();
}

function split(percent) {
  $("img-right").style.clipPath = `inset(0 0 0 ${percent}%)`;
  $("divider").style.left = `${percent}%`;
}

function drawLoupe() {
  const zoom = Number($("zoom").value);
  for (const [canvasId, imgId] of [["zoom-left", "img-left"], ["zoom-right", "img-right"]]) {
    const canvas = $(canvasId);
    const img = $(imgId);
    const ctx = canvas.getContext("2d");
    const n = canvas.width / zoom;  // output pixels across the view
    const x = Math.round(state.point[0] * img.naturalWidth - n / 2);
    const y = Math.round(state.point[1] * img.naturalHeight - n / 2);
    ctx.imageSmoothingEnabled = false;
    ctx.fillStyle = "#111";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (img.naturalWidth) ctx.drawImage(img, x, y, n, n, 0, 0, canvas.width, canvas.height);
  }
  // the loupe's square on the image
  const img = $("img-right");
  const shown = $("compare").clientWidth / (img.naturalWidth || 1);
  const side = (canvasSide() / zoom) * shown;
  const spot = $("spot").style;
  spot.width = spot.height = `${side}px`;
  spot.left = `${state.point[0] * $("compare").clientWidth - side / 2}px`;
  spot.top = `${state.point[1] * $("compare").clientHeight - side / 2}px`;
}

function canvasSide() {
  return $("zoom-left").width;
}

// -- input ---------------------------------------------------------------------------------

function choose(file) {
  if (!file) return;
  showError("");
  const lim = state.info.limits;
  if (file.size > lim.max_upload) {
    showError(`${file.name} is ${mb(file.size)}; this server takes files up to ${mb(lim.max_upload)}.`);
    return;
  }
  if (file.size === 0) {
    showError(`${file.name} is empty.`);
    return;
  }
  forget();
  $("result").hidden = true;
  state.file = file;
  state.point = [0.5, 0.5];
  run();
}

function pointerFraction(ev) {
  const box = $("compare").getBoundingClientRect();
  return [Math.min(1, Math.max(0, (ev.clientX - box.left) / box.width)),
          Math.min(1, Math.max(0, (ev.clientY - box.top) / box.height))];
}

function wire() {
  $("file").addEventListener("change", (e) => choose(e.target.files[0]));
  const drop = $("drop");
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => { e.preventDefault(); choose(e.dataTransfer.files[0]); });
  document.addEventListener("paste", (e) => {
    const file = [...(e.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
    if (file) choose(file);
  });

  $("model").addEventListener("change", () => { fillScales(); describe(byId($("model").value)); run(); });
  $("scale").addEventListener("change", run);
  $("left").addEventListener("change", run);
  $("split").addEventListener("input", (e) => split(Number(e.target.value)));
  $("zoom").addEventListener("change", drawLoupe);

  const compare = $("compare");
  let dragging = false;
  compare.addEventListener("pointerdown", (e) => {
    dragging = true;
    compare.setPointerCapture(e.pointerId);
    const [fx, fy] = pointerFraction(e);
    $("split").value = (fx * 100).toFixed(1);
    split(fx * 100);
    state.point = [fx, fy];
    drawLoupe();
  });
  compare.addEventListener("pointermove", (e) => {
    const [fx, fy] = pointerFraction(e);
    if (dragging) {
      $("split").value = (fx * 100).toFixed(1);
      split(fx * 100);
    }
    if (dragging || e.pointerType === "mouse") {
      state.point = [fx, fy];
      drawLoupe();
    }
  });
  for (const type of ["pointerup", "pointercancel"]) compare.addEventListener(type, () => { dragging = false; });
}

async function init() {
  wire();
  try {
    const r = await fetch("api/info");
    if (!r.ok) throw new Error(`status ${r.status}`);
    state.info = await r.json();
  } catch (e) {
    showError(`Cannot reach the edgesr demo server (${e.message}). Is it still running?`);
    return;
  }
  fillChoices();
  document.body.dataset.ready = "1";
}

init();
