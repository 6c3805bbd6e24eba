"use strict";
// voicegraph's try-it page. It uses only the public API, as any client would,
// with URLs relative to the page's own: <prefix>/ui/ → <prefix>/v1/…, so it
// works under any route prefix.

const API = new URL("../", location.href);
// Scheduling headroom for streamed audio: enough for the main thread to hand
// a buffer to the audio thread before it is due.
const LEAD_S = 0.05;
const FINISHED = ["succeeded", "failed", "cancelled"];
const EXTENSIONS = { wav: "wav", mp3: "mp3", opus: "ogg", flac: "flac" };

const $ = (id) => document.getElementById(id);

const state = {
  apiKey: "", // memory only: a reload forgets it
  health: null,
  context: null,
  stream: null, // {controller, player} of the current Speak
  captions: [],
  peaks: null,
  urls: {}, // blob: URLs by use, revoked when replaced
  reference: null, // the File to clone
  recorder: null,
  jobId: null,
  animating: false,
};

class ServiceError extends Error {
  constructor(status, code, message, requestId) {
    super(message);
    Object.assign(this, { status, code, requestId });
  }

  static async of(response) {
    let error = {};
    try {
      error = (await response.json()).error || {};
    } catch {
      // Not JSON: a proxy's page in front of the service. The status says enough.
    }
    return new ServiceError(
      response.status,
      error.code || `http_${response.status}`,
      error.message || response.statusText,
      error.request_id || response.headers.get("X-Request-ID") || "",
    );
  }
}

async function api(path, { json, ...options } = {}) {
  const headers = new Headers(options.headers);
  if (state.apiKey) headers.set("Authorization", `Bearer ${state.apiKey}`);
  if (json !== undefined) {
    headers.set("Content-Type", "application/json");
    options.body = JSON.stringify(json);
  }
  const response = await fetch(new URL(path, API), { ...options, headers });
  if (!response.ok) throw await ServiceError.of(response);
  return response;
}

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function blobUrl(use, blob) {
  if (state.urls[use]) URL.revokeObjectURL(state.urls[use]);
  state.urls[use] = URL.createObjectURL(blob);
  return state.urls[use];
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Errors ----------------------------------------------------------------------

function showError(error) {
  if (error.name === "AbortError") return;
  const service = error instanceof ServiceError;
  $("error-code").textContent = service ? error.code : "no_answer";
  $("error-status").textContent = service && error.status ? `(HTTP ${error.status})` : "";
  $("error-message").textContent = service ? error.message : `The service did not answer: ${error.message}`;
  $("error-request").textContent = (service && error.requestId) || "none";
  $("error").hidden = false;
  $("error").scrollIntoView({ block: "nearest" });
  if (service && error.status === 401) showKeyField();
}

function clearError() {
  $("error").hidden = true;
}

// Service, key, voices ----------------------------------------------------------

async function connect() {
  try {
    state.health = await (await api("health")).json();
  } catch (error) {
    $("service").textContent = "The service does not answer.";
    showError(error);
    return;
  }
  const health = state.health;
  const engines = health.engines.map((engine) => `${engine.engine} (${engine.model})`).join(", ");
  $("service").textContent = `Engines ${engines}, version ${health.app_version}`;
  // Only the engines that can clone are offered for it.
  $("clone-engine").replaceChildren(
    ...health.engines.filter((engine) => engine.can_clone).map((engine) => new Option(engine.engine, engine.engine)),
  );
  $("speed").min = health.limits.min_speed;
  $("speed").max = health.limits.max_speed;
  updateCount();
  if (!health.can_clone) {
    $("clone-note").textContent =
      `No engine here can clone voices (${engines}); the service answers 422 cloning_unsupported. ` +
      "An XTTS deployment can.";
    for (const control of $("clone-form").elements) control.disabled = true;
  }
  if (health.api_keys) showKeyField();
  else await loadVoices();
}

function showKeyField() {
  $("key-section").hidden = false;
}

async function useKey(event) {
  event.preventDefault();
  clearError();
  state.apiKey = $("api-key").value.trim();
  $("key-status").textContent = (await loadVoices()) ? "The key works." : "";
}

async function loadVoices(select) {
  let list;
  try {
    list = await (await api("v1/voices")).json();
  } catch (error) {
    showError(error);
    return false;
  }
  const picker = $("voice");
  const wanted = select || picker.value || list.default_voice;
  picker.replaceChildren();
  // Presets grouped by engine, then the clones (each says its engine).
  const groups = list.engines.map((engine) => [
    (voice) => voice.kind === "preset" && voice.engine === engine.engine,
    list.engines.length > 1 ? `Presets: ${engine.engine}` : "Presets",
  ]);
  groups.push([(voice) => voice.kind === "cloned", "Cloned voices"]);
  for (const [belongs, label] of groups) {
    const voices = list.voices.filter(belongs);
    if (!voices.length) continue;
    const group = el("optgroup", { label });
    for (const voice of voices) {
      const option = new Option(voice.usable ? voice.name : `${voice.name} (not usable here)`, voice.id);
      option.disabled = !voice.usable;
      option.dataset.language = voice.language || "";
      group.append(option);
    }
    picker.append(group);
  }
  picker.value = wanted;
  if (picker.value !== wanted) picker.value = list.default_voice;
  const languages = $("language");
  if (!languages.options.length) {
    languages.append(...list.languages.map((code) => new Option(code, code)));
    languages.value = list.default_language;
  }
  followVoiceLanguage();
  renderClones(list.voices.filter((voice) => voice.kind === "cloned"));
  return true;
}

// A voice made for one language (a clone, a Piper voice) speaks it best.
function followVoiceLanguage() {
  const language = $("voice").selectedOptions[0]?.dataset.language;
  if (language && [...$("language").options].some((option) => option.value === language)) {
    $("language").value = language;
  }
}

// Speak: the stream first, then the file with its captions ------------------------

function updateCount() {
  const count = Array.from($("text").value).length;
  const max = state.health?.limits.max_text_chars;
  const node = $("count");
  node.textContent = max
    ? `${count.toLocaleString("en")} / ${max.toLocaleString("en")} characters`
    : `${count.toLocaleString("en")} characters`;
  node.classList.toggle("over", max !== undefined && count > max);
}

function speechParams() {
  return {
    text: $("text").value,
    voice: $("voice").value || undefined,
    language: $("language").value || undefined,
    speed: Number($("speed").value),
  };
}

function audioContext() {
  state.context ||= new AudioContext();
  state.context.resume();
  return state.context;
}

// Raw 16-bit little-endian PCM as it arrives, scheduled back to back on the
// Web Audio clock: playback starts with the first bytes, not the last.
class StreamPlayer {
  constructor(context, rate) {
    Object.assign(this, { context, rate, sources: new Set(), start: null, end: 0, gaps: 0, samples: 0, odd: null });
  }

  // True when these bytes were the first audio.
  push(bytes) {
    if (this.odd) {
      const joined = new Uint8Array(bytes.length + 1);
      joined.set(this.odd);
      joined.set(bytes, 1);
      bytes = joined;
      this.odd = null;
    }
    if (bytes.length % 2) {
      this.odd = bytes.slice(-1);
      bytes = bytes.subarray(0, bytes.length - 1);
    }
    const count = bytes.length / 2;
    if (!count) return false;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    const buffer = this.context.createBuffer(1, count, this.rate);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < count; i++) channel[i] = view.getInt16(2 * i, true) / 32768;
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    source.onended = () => this.sources.delete(source);
    const earliest = this.context.currentTime + LEAD_S;
    const first = this.start === null;
    if (first) {
      this.start = this.end = earliest;
    } else if (earliest > this.end) {
      // The stream fell behind playback: a pause, not counted as speech.
      this.gaps += earliest - this.end;
      this.end = earliest;
    }
    source.start(this.end);
    this.sources.add(source);
    this.end += buffer.duration;
    this.samples += count;
    return first;
  }

  get seconds() {
    return this.samples / this.rate;
  }

  get playing() {
    return this.start !== null && this.context.currentTime < this.end;
  }

  // Seconds of speech played so far.
  get position() {
    if (this.start === null) return 0;
    return Math.min(this.seconds, Math.max(0, this.context.currentTime - this.start - this.gaps));
  }

  stop() {
    for (const source of this.sources) source.stop();
    this.sources.clear();
    this.end = 0;
  }
}

function stopSpeaking() {
  if (state.stream) {
    state.stream.controller.abort();
    state.stream.player?.stop();
  }
  $("player").pause();
  $("stop").disabled = true;
}

async function speak() {
  clearError();
  stopSpeaking();
  const context = audioContext(); // made inside the click, which lets it play
  const params = speechParams();
  const format = $("format").value;
  const controller = new AbortController();
  const stream = { controller, player: null };
  state.stream = stream;
  const clicked = performance.now();
  const status = $("speak-status");
  $("result").hidden = true;
  state.captions = [];
  $("speak").disabled = true;
  $("stop").disabled = false;
  status.textContent = "Asking for the stream…";
  try {
    const response = await api("v1/tts/stream", {
      method: "POST",
      json: { ...params, format: "pcm" },
      signal: controller.signal,
    });
    const rate = Number(/rate=(\d+)/.exec(response.headers.get("Content-Type"))[1]);
    stream.player = new StreamPlayer(context, rate);
    let firstAudioMs = 0;
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (stream.player.push(value)) {
        firstAudioMs = Math.round(performance.now() - clicked + LEAD_S * 1000);
        status.textContent = `Playing the stream: first audio after ${firstAudioMs} ms.`;
        animate();
      }
    }
    const streamed = `Streamed ${stream.player.seconds.toFixed(2)} s of audio; first audio after ${firstAudioMs} ms.`;
    status.textContent = `${streamed} Fetching the file and its captions…`;
    const file = await api("v1/tts", {
      method: "POST",
      json: { ...params, format, captions: "json" },
      signal: controller.signal,
    });
    await showResult(await file.json(), file.headers, params.voice);
    status.textContent = `${streamed} The file is below.`;
  } catch (error) {
    showError(error);
    status.textContent = controller.signal.aborted ? "Stopped." : "";
  } finally {
    $("speak").disabled = false;
    if (!stream.player?.playing) $("stop").disabled = true;
  }
}

function decodeBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

async function showResult(body, headers, voice) {
  const bytes = decodeBase64(body.audio_base64);
  const url = blobUrl("result", new Blob([bytes], { type: body.content_type }));
  $("player").src = url;
  const download = $("download");
  download.href = url;
  download.download = `voicegraph-${voice || "default"}.${EXTENSIONS[body.format] || body.format}`;
  download.textContent = `Download ${body.format.toUpperCase()} (${Math.ceil(bytes.length / 1024)} KB)`;
  const chunks = headers.get("X-Chunk-Count");
  $("result-info").textContent =
    `Duration ${headers.get("X-Audio-Duration")} s, ${chunks} chunk${chunks === "1" ? "" : "s"}, ` +
    `request ${body.request_id}`;
  renderCaptions(body.captions);
  $("result").hidden = false;
  try {
    state.peaks = await waveformPeaks(bytes);
  } catch {
    state.peaks = null; // a format this browser cannot decode: the player still says so
  }
  paintWaveform();
}

function clock(seconds) {
  const minutes = Math.floor(seconds / 60);
  return `${minutes}:${(seconds - minutes * 60).toFixed(1).padStart(4, "0")}`;
}

function renderCaptions(captions) {
  state.captions = captions;
  $("captions").replaceChildren(
    ...captions.map((caption) => {
      // Each word its own span, lit while it is said; a caption without words shows its text.
      const words = caption.words?.length
        ? caption.words.flatMap((word, index) => [index ? " " : "", el("span", { className: "word" }, word.word)])
        : [caption.text];
      const button = el("button", { type: "button" }, el("span", { className: "time" }, clock(caption.start)), ...words);
      button.addEventListener("click", () => {
        state.stream?.player?.stop();
        $("player").currentTime = caption.start;
        $("player").play();
      });
      return el("li", {}, button);
    }),
  );
}

// The caption being spoken at `seconds`: the last one begun, so the pause
// after a sentence keeps it lit until the next starts.
function highlight(seconds) {
  let current = -1;
  state.captions.forEach((caption, index) => {
    if (caption.start <= seconds) current = index;
  });
  [...$("captions").children].forEach((item, index) => {
    item.classList.toggle("current", index === current);
    if (index === current) item.setAttribute("aria-current", "true");
    else item.removeAttribute("aria-current");
    const words = state.captions[index].words || [];
    item.querySelectorAll(".word").forEach((span, at) => {
      span.classList.toggle("spoken", index === current && words[at].start <= seconds && seconds < words[at].end);
    });
  });
}

function playbackPosition() {
  const player = $("player");
  if (!player.paused) return player.currentTime;
  if (state.stream?.player?.playing) return state.stream.player.position;
  return null;
}

// One frame loop while anything plays, for the captions and the waveform.
function animate() {
  if (!state.animating) frame();
}

function frame() {
  const position = playbackPosition();
  state.animating = position !== null;
  if (!state.animating) {
    if (!$("speak").disabled) $("stop").disabled = true;
    return;
  }
  highlight(position);
  paintWaveform();
  requestAnimationFrame(frame);
}

async function waveformPeaks(bytes) {
  const audio = await audioContext().decodeAudioData(bytes.slice().buffer);
  const samples = audio.getChannelData(0);
  const columns = 600;
  const step = Math.max(1, Math.floor(samples.length / columns));
  const peaks = [];
  for (let start = 0; start + step <= samples.length; start += step) {
    let low = 0;
    let high = 0;
    for (let i = start; i < start + step; i++) {
      low = Math.min(low, samples[i]);
      high = Math.max(high, samples[i]);
    }
    peaks.push([low, high]);
  }
  return peaks;
}

function paintWaveform() {
  const canvas = $("waveform");
  const scale = window.devicePixelRatio || 1;
  const width = Math.round(canvas.clientWidth * scale);
  const height = Math.round(canvas.clientHeight * scale);
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
  const paint = canvas.getContext("2d");
  paint.clearRect(0, 0, width, height);
  if (!state.peaks) return;
  const player = $("player");
  const played = player.duration ? player.currentTime / player.duration : 0;
  const style = getComputedStyle(document.documentElement);
  const colors = [style.getPropertyValue("--accent"), style.getPropertyValue("--muted")];
  const middle = height / 2;
  state.peaks.forEach(([low, high], index) => {
    const x = (index / state.peaks.length) * width;
    paint.fillStyle = colors[index / state.peaks.length < played ? 0 : 1];
    paint.fillRect(x, middle - high * middle, Math.max(1, width / state.peaks.length - 0.5), (high - low) * middle || 1);
  });
}

function seekOnWaveform(event) {
  const player = $("player");
  if (!player.duration) return;
  const box = $("waveform").getBoundingClientRect();
  player.currentTime = ((event.clientX - box.left) / box.width) * player.duration;
  highlight(player.currentTime);
  paintWaveform();
}

// Clone ---------------------------------------------------------------------------

function useReference(file) {
  state.reference = file;
  const preview = $("clone-preview");
  preview.src = blobUrl("reference", file);
  preview.hidden = false;
  if (!$("clone-name").value) $("clone-name").value = file.name.replace(/\.[^.]*$/, "");
}

// A WAV of the recording, mixed to mono: browsers record WebM or MP4, and a
// WAV plays back in the preview with its real length.
function encodeWav(audio) {
  const count = audio.length;
  const mono = new Float32Array(count);
  for (let channel = 0; channel < audio.numberOfChannels; channel++) {
    audio.getChannelData(channel).forEach((value, i) => (mono[i] += value / audio.numberOfChannels));
  }
  const view = new DataView(new ArrayBuffer(44 + 2 * count));
  const text = (offset, value) => [...value].forEach((char, i) => view.setUint8(offset + i, char.charCodeAt(0)));
  text(0, "RIFF");
  view.setUint32(4, 36 + 2 * count, true);
  text(8, "WAVEfmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, audio.sampleRate, true);
  view.setUint32(28, audio.sampleRate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  text(36, "data");
  view.setUint32(40, 2 * count, true);
  mono.forEach((value, i) => view.setInt16(44 + 2 * i, Math.max(-1, Math.min(1, value)) * 32767, true));
  return new Blob([view], { type: "audio/wav" });
}

async function toggleRecording() {
  const status = $("record-status");
  if (state.recorder) {
    state.recorder.stop();
    return;
  }
  if (!navigator.mediaDevices?.getUserMedia) {
    status.textContent = "The browser offers the microphone only to pages on https or localhost.";
    return;
  }
  let microphone;
  try {
    microphone = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    status.textContent = `The microphone is not available: ${error.message}`;
    return;
  }
  const recorder = new MediaRecorder(microphone);
  const parts = [];
  const started = Date.now();
  const timer = setInterval(() => {
    status.textContent = `Recording: ${Math.floor((Date.now() - started) / 1000)} s (3 to 30 s of speech).`;
  }, 250);
  recorder.ondataavailable = (event) => parts.push(event.data);
  recorder.onstop = async () => {
    clearInterval(timer);
    microphone.getTracks().forEach((track) => track.stop());
    state.recorder = null;
    $("record").textContent = "Record with the microphone";
    try {
      const recorded = new Blob(parts, { type: recorder.mimeType });
      const audio = await audioContext().decodeAudioData(await recorded.arrayBuffer());
      useReference(new File([encodeWav(audio)], "recording.wav", { type: "audio/wav" }));
      status.textContent = `Recorded ${audio.duration.toFixed(1)} s. Listen to it below, then clone it.`;
    } catch (error) {
      status.textContent = `The recording could not be read: ${error.message}`;
    }
  };
  recorder.start();
  state.recorder = recorder;
  $("record").textContent = "Stop recording";
}

async function cloneVoice(event) {
  event.preventDefault();
  clearError();
  const status = $("clone-status");
  if (!state.reference) {
    status.textContent = "Choose a recording or record one first.";
    return;
  }
  const form = new FormData();
  form.append("file", state.reference, state.reference.name);
  form.append("name", $("clone-name").value);
  if ($("language").value) form.append("language", $("language").value);
  form.append("overwrite", String($("clone-overwrite").checked));
  if ($("clone-engine").value) form.append("engine", $("clone-engine").value);
  $("clone").disabled = true;
  status.textContent = "Cloning…";
  try {
    const voice = await (await api("v1/voices", { method: "POST", body: form })).json();
    await loadVoices(voice.id);
    status.textContent =
      `Cloned “${voice.name}” as voice ${voice.id} from ${voice.reference_duration_s.toFixed(1)} s of speech; ` +
      "it is selected for Speak.";
  } catch (error) {
    status.textContent = "";
    showError(error);
  } finally {
    $("clone").disabled = false;
  }
}

function renderClones(clones) {
  const list = $("clones");
  if (!clones.length) {
    list.replaceChildren(el("li", { className: "muted" }, "None yet."));
    return;
  }
  list.replaceChildren(
    ...clones.map((voice) => {
      const usable = voice.usable ? "usable" : `made by ${voice.engine} (${voice.model}): not usable with this engine`;
      const sample = el("audio", { controls: true, hidden: true });
      sample.setAttribute("aria-label", `Sample of ${voice.name}`);
      const listen = el("button", { type: "button" }, "Listen to the sample");
      listen.setAttribute("aria-label", `Listen to the sample of ${voice.name}`);
      listen.addEventListener("click", () => playSample(voice, sample));
      const remove = el("button", { type: "button" }, "Delete");
      remove.setAttribute("aria-label", `Delete ${voice.name}`);
      remove.addEventListener("click", () => deleteVoice(voice));
      const details = `${voice.id}, ${voice.language || "any language"}, ${usable}`;
      const item = el("li", {}, el("p", {}, el("strong", {}, voice.name), ` (${details})`));
      item.dataset.voice = voice.id;
      item.append(el("div", { className: "row" }, listen, remove), sample);
      return item;
    }),
  );
}

async function playSample(voice, audio) {
  clearError();
  try {
    const sample = await (await api(`v1/voices/${encodeURIComponent(voice.id)}/sample`)).blob();
    audio.src = blobUrl(`sample-${voice.id}`, sample);
    audio.hidden = false;
    await audio.play();
  } catch (error) {
    showError(error);
  }
}

async function deleteVoice(voice) {
  if (!confirm(`Delete the voice “${voice.name}”? Its profile and sample are removed for every client.`)) return;
  clearError();
  try {
    await api(`v1/voices/${encodeURIComponent(voice.id)}`, { method: "DELETE" });
    await loadVoices();
    $("clone-status").textContent = `Deleted ${voice.id}.`;
  } catch (error) {
    showError(error);
  }
}

// Jobs ----------------------------------------------------------------------------

function showJob(job) {
  const { chunks_done: done, chunks_total: total } = job.progress;
  const progress = $("job-progress");
  const percent = job.status === "succeeded" ? 100 : total ? Math.floor((100 * done) / total) : 0;
  progress.max = total || 1;
  progress.value = job.status === "succeeded" ? progress.max : Math.min(done, total || 0);
  $("job-status").textContent = `Job ${job.job_id}: ${job.status}, ${done} of ${total ?? "?"} chunks (${percent}%).`;
}

async function submitJob() {
  clearError();
  state.jobId = null;
  $("job-player").hidden = true;
  try {
    const response = await api("v1/tts/jobs", { method: "POST", json: { ...speechParams(), format: $("format").value } });
    const job = await response.json();
    state.jobId = job.job_id;
    $("job-cancel").hidden = false;
    showJob(job);
    await followJob(job.job_id);
  } catch (error) {
    showError(error);
  }
}

async function followJob(id) {
  while (state.jobId === id) {
    const job = await (await api(`v1/tts/jobs/${id}`)).json();
    if (state.jobId !== id) return;
    showJob(job);
    if (FINISHED.includes(job.status)) {
      $("job-cancel").hidden = true;
      await finishJob(job);
      return;
    }
    await sleep(500);
  }
}

async function finishJob(job) {
  if (job.status === "failed") {
    showError(new ServiceError(0, job.error.code, job.error.message, ""));
    return;
  }
  if (job.status !== "succeeded") return;
  const audio = await (await api(`v1/tts/jobs/${job.job_id}/audio`)).blob();
  const player = $("job-player");
  player.src = blobUrl("job", audio);
  $("job-status").textContent += ` Duration ${job.result.duration_s.toFixed(3)} s.`;
  player.hidden = false;
}

async function cancelJob() {
  clearError();
  try {
    showJob(await (await api(`v1/tts/jobs/${state.jobId}/cancel`, { method: "POST" })).json());
  } catch (error) {
    showError(error);
  }
}

// Wiring --------------------------------------------------------------------------

$("error-close").addEventListener("click", clearError);
$("key-form").addEventListener("submit", useKey);
$("text").addEventListener("input", updateCount);
$("text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    speak();
  }
});
$("voice").addEventListener("change", followVoiceLanguage);
$("speed").addEventListener("input", () => {
  $("speed-value").textContent = `${Number($("speed").value).toFixed(1)}×`;
});
$("speak").addEventListener("click", speak);
$("stop").addEventListener("click", stopSpeaking);
const player = $("player");
player.addEventListener("play", () => {
  $("stop").disabled = false;
  animate();
});
for (const type of ["seeked", "timeupdate", "ended"]) {
  player.addEventListener(type, () => {
    highlight(player.currentTime);
    paintWaveform();
  });
}
$("waveform").addEventListener("click", seekOnWaveform);
window.addEventListener("resize", paintWaveform);
$("clone-file").addEventListener("change", () => {
  if ($("clone-file").files[0]) useReference($("clone-file").files[0]);
});
$("record").addEventListener("click", toggleRecording);
$("clone-form").addEventListener("submit", cloneVoice);
$("job-submit").addEventListener("click", submitJob);
$("job-cancel").addEventListener("click", cancelJob);
connect();
