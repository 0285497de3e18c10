"""The demo's single HTML page (inline CSS and JavaScript, no external assets) as a Python string."""

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>facesketch demo</title>
<style>
  :root { --ink: #1d232a; --muted: #5d6873; --line: #d9dee3; --accent: #2f6fde; --bad: #b3261e; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: #f6f7f9; }
  header { padding: 18px 24px 8px; }
  header h1 { margin: 0; font-size: 22px; }
  header p { margin: 4px 0 0; color: var(--muted); }
  main { padding: 8px 24px 32px; max-width: 1200px; }
  form { display: flex; flex-wrap: wrap; gap: 14px; align-items: center; background: #fff; border: 1px solid var(--line);
         border-radius: 10px; padding: 14px 16px; }
  label { display: inline-flex; gap: 6px; align-items: center; }
  button { font: inherit; padding: 7px 18px; border-radius: 7px; border: 0; background: var(--accent); color: #fff; cursor: pointer; }
  button:disabled { opacity: .55; cursor: progress; }
  #status { margin: 12px 2px; color: var(--muted); min-height: 1.4em; }
  #error { margin: 12px 0; padding: 10px 14px; border-radius: 8px; background: #fbeaea; color: var(--bad); border: 1px solid #f0c4c1; }
  #error[hidden] { display: none; }
  section.card { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; margin: 14px 0; }
  section.card h2 { margin: 0 0 10px; font-size: 16px; }
  .pair { display: flex; gap: 14px; flex-wrap: wrap; align-items: flex-start; }
  figure { margin: 0; text-align: center; }
  figure img { display: block; width: 256px; height: 256px; object-fit: contain; image-rendering: auto;
               background: #eef0f2; border-radius: 6px; }
  figure.wide { text-align: left; }
  figure.wide img { width: auto; height: auto; max-width: min(100%, 540px); max-height: 420px; }
  figcaption { font-size: 13px; color: var(--muted); margin-top: 4px; }
  .masks { display: flex; gap: 6px; flex-wrap: wrap; margin-top: 10px; }
  .masks figure img { width: 84px; height: 84px; image-rendering: pixelated; }
  a.download { display: inline-block; margin-top: 6px; font-size: 13px; color: var(--accent); }
  footer { color: var(--muted); font-size: 13px; padding: 0 24px 24px; }
</style>
</head>
<body>
<header>
  <h1>facesketch</h1>
  <p id="model">Face photo &rarr; sketch with an attention-guided CycleGAN. Everything runs on this machine.</p>
</header>
<main>
  <form id="form">
    <input id="file" name="file" type="file" accept="image/*" required>
    <label title="Detect faces, align each to the FS2K framing the model was trained on, and translate them one by one">
      <input id="align" type="checkbox" checked> detect &amp; align faces</label>
    <label id="direction-label" hidden>direction
      <select id="direction"><option value="AtoB">photo &rarr; sketch</option><option value="BtoA">sketch &rarr; photo</option></select>
    </label>
    <button id="submit" type="submit">Translate</button>
  </form>
  <div id="status" aria-live="polite"></div>
  <div id="error" role="alert" hidden></div>
  <div id="results"></div>
</main>
<footer id="limits"></footer>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let stem = "image";

function el(tag, attrs, children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children || []) e.append(c);
  return e;
}
function figure(src, caption, cls, testid) {
  const img = el("img", {src: src, alt: caption});
  if (testid) img.dataset.testid = testid;
  return el("figure", cls ? {class: cls} : {}, [img, el("figcaption", {}, [caption])]);
}
function download(src, name) {
  return el("a", {class: "download", href: src, download: name}, ["Download " + name]);
}
function showError(msg) {
  $("error").textContent = msg;
  $("error").hidden = false;
}

fetch("/api/info").then((r) => r.json()).then((info) => {
  $("model").textContent = "Model " + info.name + " (" + info.generator + ", " + info.size + " px). " +
    "Face photo \u2192 sketch with an attention-guided CycleGAN; everything runs on this machine.";
  $("limits").textContent = "Uploads: up to " + info.max_upload_mb + " MB and " + info.max_megapixels +
    " megapixels (PNG, JPEG, WebP, BMP, TIFF, GIF)." + (info.face_detection ? "" : " Face detection is unavailable (OpenCV missing).");
  if (info.directions.length > 1) $("direction-label").hidden = false;
  if (!info.face_detection) { $("align").checked = false; $("align").disabled = true; }
});
$("direction").addEventListener("change", () => {
  // sketches are not photos: the face detector is made for photos, so alignment defaults off for sketch -> photo
  if (!$("align").disabled) $("align").checked = $("direction").value === "AtoB";
});

$("form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const file = $("file").files[0];
  if (!file) return;
  stem = file.name.replace(/\.[^.]*$/, "") || "image";
  $("error").hidden = true;
  $("results").replaceChildren();
  $("submit").disabled = true;
  $("status").textContent = "Translating " + file.name + " ...";
  const body = new FormData();
  body.append("file", file);
  const q = new URLSearchParams({align: $("align").checked, direction: $("direction").value});
  try {
    const r = await fetch("/api/translate?" + q, {method: "POST", body: body});
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) {
      showError((data && data.detail) ? String(data.detail) : "The server answered " + r.status + " " + r.statusText + ".");
      $("status").textContent = "";
      return;
    }
    render(data);
  } catch (e) {
    showError("The upload failed (" + e.message + "). The file may be larger than the server accepts.");
    $("status").textContent = "";
  } finally {
    $("submit").disabled = false;
  }
});

function render(data) {
  $("status").textContent = data.message;
  const out = $("results");
  data.results.forEach((res, i) => {
    const name = stem + (data.results.length > 1 ? "_" + res.name : "") + ".png";
    const card = el("section", {class: "card", "data-testid": "result"}, [
      el("h2", {}, [res.name === "image" ? "Whole image"
                    : res.name + (res.from_eyes === false ? " (aligned from the box: no eyes found)" : "")]),
      el("div", {class: "pair"}, [
        figure(res.input, res.name === "image" ? "input (resized)" : "aligned input", "", "input-" + i),
        el("div", {}, [figure(res.output, "output", "", "output-" + i), download(res.output, name)]),
      ]),
    ]);
    if (res.attention) {
      card.append(el("div", {class: "masks"}, res.attention.map((m, k) =>
        figure(m.image, m.label + " " + m.mean.toFixed(2), "", "mask-" + i + "-" + k))));
    }
    out.append(card);
  });
  if (data.pasted) {
    out.append(el("section", {class: "card"}, [el("h2", {}, ["The whole photo"]), el("div", {class: "pair"}, [
      el("div", {}, [figure(data.pasted, "pasted back into the photo", "wide", "pasted"), download(data.pasted, stem + "_pasted.png")]),
      figure(data.detections, "detected faces (green: aligned by the eyes; orange: by the box)", "wide", "detections"),
    ])]));
  }
}
</script>
</body>
</html>
"""
