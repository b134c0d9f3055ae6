// Unmix (Chapter 11): the pages' behaviour. Every state-changing request sends the session's CSRF token, which the
// page carries in <meta name="csrf-token">; the server refuses any request without it.
"use strict";

const csrfToken = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
const byId = (id) => document.getElementById(id);

async function detail(response) {
  try { return (await response.json()).detail || response.statusText; } catch (e) { return response.statusText; }
}

// Sign up and log in: JSON to /api/signup or /api/login, then the list of songs.
function setupAuth() {
  const form = byId("auth-form");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    byId("auth-error").textContent = "";
    const response = await fetch(`/api/${form.dataset.mode}`, {
      method: "POST", headers: {"Content-Type": "application/json"}, credentials: "same-origin",
      body: JSON.stringify({email: byId("email").value, password: byId("password").value}),
    });
    if (response.ok) { window.location.assign("/jobs"); return; }
    byId("auth-error").textContent = await detail(response);
  });
}

// Upload with a progress bar: XMLHttpRequest reports the bytes sent, fetch does not.
function setupUpload() {
  const form = byId("upload-form");
  if (!form) return;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const file = byId("file").files[0];
    if (!file) return;
    const data = new FormData();
    data.append("file", file);
    data.append("shifts", byId("shifts").value || "0");
    const bar = byId("upload-progress"), status = byId("upload-status");
    const request = new XMLHttpRequest();
    request.open("POST", "/api/jobs");
    request.setRequestHeader("X-CSRF-Token", csrfToken());
    request.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) { bar.value = e.loaded / e.total; status.textContent = `${Math.round(100 * bar.value)} %`; }
    });
    request.addEventListener("load", () => {
      let body = {};
      try { body = JSON.parse(request.responseText); } catch (e) { /* not JSON */ }
      if (request.status === 202) { window.location.assign(`/jobs/${body.id}`); return; }
      bar.hidden = true; status.textContent = "";
      byId("upload-error").textContent = body.detail || `upload failed (${request.status})`;
    });
    request.addEventListener("error", () => { byId("upload-error").textContent = "the upload failed: network error"; });
    byId("upload-error").textContent = "";
    bar.hidden = false; bar.value = 0;
    request.send(data);
  });
}

// Delete buttons, on the list and on a job's page.
function setupDelete() {
  document.querySelectorAll("button.delete").forEach((button) => {
    button.addEventListener("click", async () => {
      if (!window.confirm("Delete this song and its stems?")) return;
      const id = button.dataset.job;
      const response = await fetch(`/api/jobs/${id}`, {method: "DELETE", headers: {"X-CSRF-Token": csrfToken()}});
      if (response.status !== 204) { window.alert(await detail(response)); return; }
      if (button.dataset.then) { window.location.assign(button.dataset.then); return; }
      const row = byId(`job-${id}`);
      if (row) row.remove();
    });
  });
}

// A job's page: poll its status until it is done or failed, then show the result.
function setupJob() {
  const card = byId("job");
  if (!card || !["queued", "running"].includes(card.dataset.status)) return;
  const poll = async () => {
    const response = await fetch(`/api/jobs/${card.dataset.job}`);
    if (!response.ok) return;
    const job = await response.json();
    byId("status").textContent = job.status;
    byId("stage").textContent = job.stage;
    if (byId("job-progress")) byId("job-progress").value = job.progress;
    if (job.status === "done" || job.status === "failed") { window.location.reload(); return; }
    window.setTimeout(poll, 1000);
  };
  window.setTimeout(poll, 500);
}

// The mixer: the four stems decoded with Web Audio, each through its own gain, started together.
const mixer = {context: null, gains: {}, buffers: {}, sources: []};
window.unmixMixer = mixer;          // for the browser test: the context's state and the gains

async function loadStems() {
  if (!mixer.context) mixer.context = new AudioContext();
  const sliders = [...document.querySelectorAll("input.gain")];
  await Promise.all(sliders.map(async (slider) => {
    const name = slider.dataset.stem;
    if (mixer.buffers[name]) return;
    const data = await (await fetch(slider.dataset.url)).arrayBuffer();
    mixer.buffers[name] = await mixer.context.decodeAudioData(data);
    const gain = mixer.context.createGain();
    gain.gain.value = Number(slider.value);
    gain.connect(mixer.context.destination);
    mixer.gains[name] = gain;
  }));
}

function stopMix() {
  mixer.sources.forEach((source) => { try { source.stop(); } catch (e) { /* already stopped */ } });
  mixer.sources = [];
  byId("mix-play").disabled = false;
  byId("mix-stop").disabled = true;
  byId("mix-state").textContent = "stopped";
}

function setupMixer() {
  const play = byId("mix-play");
  if (!play) return;
  document.querySelectorAll("input.gain").forEach((slider) => {
    slider.addEventListener("input", () => {
      const value = Number(slider.value);
      byId(`${slider.id}-value`).textContent = value.toFixed(2);
      const gain = mixer.gains[slider.dataset.stem];
      if (gain) gain.gain.setValueAtTime(value, mixer.context.currentTime);
    });
  });
  play.addEventListener("click", async () => {
    play.disabled = true;
    byId("mix-state").textContent = "loading the stems…";
    await loadStems();
    await mixer.context.resume();
    const start = mixer.context.currentTime + 0.1;
    mixer.sources = Object.entries(mixer.buffers).map(([name, buffer]) => {
      const source = mixer.context.createBufferSource();
      source.buffer = buffer;
      source.connect(mixer.gains[name]);
      source.start(start);
      return source;
    });
    mixer.sources[0].addEventListener("ended", stopMix);
    byId("mix-stop").disabled = false;
    byId("mix-state").textContent = "playing";
  });
  byId("mix-stop").addEventListener("click", stopMix);
}

document.addEventListener("DOMContentLoaded", () => {
  setupAuth(); setupUpload(); setupDelete(); setupJob(); setupMixer();
});
