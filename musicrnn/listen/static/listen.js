// The listening page: one clip at a time, in this participant's own order; every rating is sent as soon
// as it is given, so nothing is lost when the listener stops. The participant id stays in localStorage
// (per study), so a listener who comes back continues where they left off.
"use strict";

const root = document.getElementById("study");
const aspects = JSON.parse(root.dataset.aspects);
const askGuess = root.dataset.askGuess === "true";
const storageKey = `musicrnn-listen:${root.dataset.studyId}:participant`;
const form = document.getElementById("rating");
const player = document.getElementById("player");

let state = null; // {participant_id, clips: [ids in order], rated: {id: rating}, total}
let current = 0; // index into state.clips

async function api(method, url, body) {
  const response = await fetch(url, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(data.error || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

function say(text) {
  const message = document.getElementById("message");
  message.textContent = text || "";
  message.hidden = !text;
}

function ratedCount() {
  return Object.keys(state.rated).length;
}

function firstUnrated(from) {
  for (let k = 0; k < state.clips.length; k++) {
    const index = (from + k) % state.clips.length;
    if (!(state.clips[index] in state.rated)) return index;
  }
  return -1;
}

function showProgress() {
  const rated = ratedCount();
  document.getElementById("progress-bar").value = rated;
  const where = form.hidden ? "" : `Clip ${current + 1} of ${state.total} · `;
  document.getElementById("progress").textContent = `${where}${rated} of ${state.total} rated`;
}

function showClip(index) {
  current = index;
  const clipId = state.clips[index];
  document.getElementById("clip-title").textContent = `Clip ${index + 1} of ${state.total}`;
  player.src = `/audio/${encodeURIComponent(clipId)}`;
  player.dataset.clipId = clipId;
  form.reset();
  const earlier = state.rated[clipId];
  if (earlier) {
    for (const aspect of aspects) form.elements[aspect].value = String(earlier[aspect]);
    if (askGuess) form.elements.guess.value = earlier.guess || "";
  }
  document.getElementById("back").disabled = index === 0;
  form.hidden = false;
  document.getElementById("done").hidden = true;
  say("");
  showProgress();
}

function showDone() {
  form.hidden = true;
  player.pause();
  document.getElementById("done").hidden = false;
  showProgress();
}

async function start() {
  let saved = localStorage.getItem(storageKey);
  if (saved) {
    try {
      state = await api("GET", `/api/participants/${encodeURIComponent(saved)}`);
    } catch (error) {
      if (error.status !== 404) throw error; // a study started afresh: take a new id below
    }
  }
  if (!state) {
    state = await api("POST", "/api/participants");
    localStorage.setItem(storageKey, state.participant_id);
  }
  document.getElementById("participant").textContent = state.participant_id;
  const next = firstUnrated(0);
  if (next < 0) showDone();
  else showClip(next);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const rating = { participant_id: state.participant_id, clip_id: state.clips[current] };
  for (const aspect of aspects) {
    const value = form.elements[aspect].value;
    if (!value) {
      say(`Please rate ${aspect} (1 to 5) before going on.`);
      return;
    }
    rating[aspect] = Number(value);
  }
  if (askGuess) rating.guess = form.elements.guess.value || null;
  const button = document.getElementById("submit");
  button.disabled = true;
  try {
    await api("POST", "/api/ratings", rating);
    const { participant_id, clip_id, ...scores } = rating;
    state.rated[clip_id] = scores;
    const next = firstUnrated(current + 1);
    if (next < 0) showDone();
    else showClip(next);
  } catch (error) {
    say(`Your rating was not saved: ${error.message}`);
  } finally {
    button.disabled = false;
  }
});

document.getElementById("back").addEventListener("click", () => {
  if (current > 0) showClip(current - 1);
});
document.getElementById("review").addEventListener("click", () => showClip(state.clips.length - 1));

start().catch((error) => say(`The study could not be loaded: ${error.message}`));
