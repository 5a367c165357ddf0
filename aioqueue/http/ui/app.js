// aioqueue dashboard: one page, no build step, no dependencies.
// Follows jobs live from GET /events (read with fetch so the token can go in a header);
// where the server has no event stream it polls the job list, and where it has no list
// either it polls the jobs this page knows (the ones submitted here).
"use strict";

const BASE = location.pathname.replace(/ui\/?$/, "");
const POLL_MS = 500;
const TERMINAL = new Set(["success", "failure"]);
const jobs = new Map();
let selected = null;
let listSupported = true;
let polling = null;
let stream = null;  // the AbortController of the open event stream

const $ = (id) => document.getElementById(id);

function token() { return localStorage.getItem("aioqueue.token") || ""; }

function headers(extra) {
  const h = Object.assign({ Accept: "application/json" }, extra || {});
  if (token()) h.Authorization = "Bearer " + token();
  return h;
}

async function api(method, path, body) {
  // every POST says JSON, empty or not: the server refuses others (a cross-site form cannot send it)
  const init = { method, headers: headers(method === "POST" ? { "Content-Type": "application/json" } : {}) };
  if (body !== undefined) init.body = body;
  const resp = await fetch(BASE + path, init);
  let data = null;
  if (resp.status !== 204) { try { data = await resp.json(); } catch (e) { data = null; } }
  if (resp.status === 401) notice("The server wants a token: enter it at the top right.");
  return { status: resp.status, ok: resp.ok, data };
}

function missing(status) { return status === 404 || status === 405; }

function notice(text) {
  const el = $("notice");
  el.textContent = text || "";
  el.hidden = !text;
}

function errorText(answer) {
  const e = answer.data && answer.data.error;
  return e ? `${e.code}: ${e.message}` : `HTTP ${answer.status}`;
}

// ------------------------------------------------------------------ rendering

let live = false;
// ids of jobs the stream sent since it last opened, and how many times it opened
let streamed = new Set();
let opens = 0;

function upsert(job) {
  if (!job || !job.id) return;
  jobs.set(job.id, job);
  render();
}

// An answer to our own request (submit, cancel, ...) may be older than an event that
// arrived before it: while the stream is live, an event already seen for the job wins.
function upsertAnswer(job) {
  if (live && job && jobs.has(job.id)) { render(); return; }
  upsert(job);
}

function visible(job) {
  const p = $("filter-process").value, s = $("filter-state").value;
  return (!p || job.process === p) && (!s || job.state === s);
}

function percentOf(job) {
  if (job.state === "success") return 100;
  const p = job.progress && job.progress.percent;
  return typeof p === "number" ? p : 0;
}

function row(job) {
  const tr = document.createElement("tr");
  tr.dataset.id = job.id;
  tr.dataset.process = job.process;
  tr.dataset.state = job.state;
  const cells = [document.createElement("td"), document.createElement("td"),
                 document.createElement("td"), document.createElement("td"),
                 document.createElement("td")];
  cells[0].className = "id";
  cells[0].textContent = job.id.slice(0, 8);
  cells[0].title = job.id;
  cells[1].textContent = job.process;
  const state = document.createElement("span");
  state.className = "state " + job.state;
  state.textContent = job.state;
  cells[2].appendChild(state);
  const bar = document.createElement("div");
  bar.className = "bar " + job.state;
  const fill = document.createElement("span");
  const percent = percentOf(job);
  fill.style.width = percent + "%";
  bar.appendChild(fill);
  bar.dataset.percent = String(percent);
  const message = document.createElement("div");
  message.className = "message";
  message.textContent = (job.progress && job.progress.message) || (job.error ? job.error.message : "");
  cells[3].append(bar, message);
  cells[4].textContent = job.created_at ? new Date(job.created_at).toLocaleTimeString() : "";
  tr.append(...cells);
  if (job.id === selected) tr.classList.add("selected");
  tr.addEventListener("click", () => select(job.id));
  return tr;
}

function render() {
  const body = $("jobs");
  const shown = [...jobs.values()].filter(visible)
    .sort((a, b) => (b.created_at || "").localeCompare(a.created_at || ""));
  body.replaceChildren(...shown.map(row));
  $("empty").hidden = shown.length > 0;
  renderDetail();
}

function renderDetail() {
  const panel = $("detail");
  const job = selected && jobs.get(selected);
  panel.hidden = !job;
  if (!job) return;
  $("detail-id").textContent = job.id;
  const fields = [["state", job.state], ["process", job.process],
    ["progress", job.progress ? `${job.progress.percent ?? ""}% ${job.progress.message ?? ""}` : ""],
    ["attempts", `${job.attempts} of ${job.max_attempts}`], ["priority", job.priority],
    ["created", job.created_at], ["started", job.started_at || ""], ["ended", job.ended_at || ""],
    ["schedule", job.schedule || ""], ["parents", (job.depends_on || []).join(" ")]];
  $("detail-fields").replaceChildren(...fields.flatMap(([k, v]) => {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = k; dd.textContent = String(v); dd.dataset.field = k;
    return [dt, dd];
  }));
  const failed = job.state === "failure";
  $("outcome-title").textContent = failed ? "Error" : "Result";
  const outcome = $("outcome");
  outcome.className = failed ? "failure" : "";
  outcome.textContent = failed ? JSON.stringify(job.error, null, 2)
    : TERMINAL.has(job.state) ? JSON.stringify(job.result, null, 2) : "(not finished)";
  $("cancel").disabled = TERMINAL.has(job.state);
  $("pause").disabled = !(job.state === "queued" || job.state === "running");
  $("resume").disabled = job.state !== "paused";
}

function select(id) {
  selected = id;
  render();
  refresh(id);
}

async function refresh(id) {
  const answer = await api("GET", "async-process/" + id);
  if (answer.ok) upsertAnswer(answer.data);
}

async function act(action) {
  if (!selected) return;
  const answer = await api("POST", `async-process/${selected}/${action}`);
  if (answer.ok) { notice(""); upsertAnswer(answer.data); }
  else if (answer.status === 405 || (answer.status === 404 && answer.data && answer.data.error
           && answer.data.error.message === "Not Found")) notice(`This server has no ${action}.`);
  else notice(`${action} refused: ${errorText(answer)}`);
}

// ------------------------------------------------------------------ following jobs

async function loadList() {
  if (!listSupported) return false;
  const q = new URLSearchParams({ limit: "50" });
  if ($("filter-process").value) q.set("process", $("filter-process").value);
  if ($("filter-state").value) q.set("state", $("filter-state").value);
  const answer = await api("GET", "async-process/?" + q);
  if (missing(answer.status)) { listSupported = false; return false; }
  if (answer.ok) answer.data.jobs.forEach((job) => { if (!live || !jobs.has(job.id)) jobs.set(job.id, job); });
  render();
  return answer.ok;
}

// Re-reads every unfinished job the page shows; ``keep`` names jobs whose newer state
// came from the stream while the answers were on their way.
async function pollKnown(keep = new Set()) {
  const active = [...jobs.values()].filter((job) => !TERMINAL.has(job.state));
  const answers = await Promise.all(active.map((job) => api("GET", "async-process/" + job.id)));
  answers.forEach((answer) => {
    if (answer.ok && !keep.has(answer.data.id)) jobs.set(answer.data.id, answer.data);
  });
  if (answers.length) render();
}

function startPolling() {
  setMode("polling", false);
  if (polling) return;
  const tick = async () => {
    try {
      if (!(await loadList())) await pollKnown();
    } catch (e) { setMode("offline", false); }
    polling = setTimeout(tick, POLL_MS);
  };
  tick();
}

function setMode(text, isLive) {
  live = isLive;
  const el = $("mode");
  el.textContent = text;
  el.classList.toggle("live", isLive);
}

async function readEvents(resp) {
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      const data = block.split(/\r?\n/).filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
      if (data) {
        try { const job = JSON.parse(data); streamed.add(job.id); upsert(job); }
        catch (e) { /* not a job: ignore */ }
      }
    }
  }
}

async function follow() {
  const controller = new AbortController();
  stream = controller;
  let resp;
  try {
    resp = await fetch(BASE + "events", { headers: headers({ Accept: "text/event-stream" }),
                                          signal: controller.signal });
  } catch (e) { resp = null; }
  if (controller.signal.aborted) return;
  if (!resp || !resp.ok || !(resp.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
    if (resp && resp.status === 401) notice("The server wants a token: enter it at the top right.");
    startPolling();
    return;
  }
  if (polling) { clearTimeout(polling); polling = null; }
  setMode("live", true);
  // what changed before the stream opened (a job submitted here, or listed, that moved
  // meanwhile) is never sent on it: read those jobs once more
  streamed = new Set();
  opens += 1;
  pollKnown(streamed).catch(() => {});
  try { await readEvents(resp); } catch (e) { /* the stream broke: reconnect below */ }
  if (controller.signal.aborted) return;
  setMode("reconnecting", false);
  setTimeout(follow, 1000);
}

function refollow() {
  // a new token sees other jobs: reopen the stream with it
  if (stream) stream.abort();
  if (polling) { clearTimeout(polling); polling = null; }
  follow();
}

// ------------------------------------------------------------------ forms

async function loadProcesses() {
  const answer = await api("GET", "processes");
  if (!answer.ok) return;
  const names = answer.data.processes.map((p) => p.name);
  const help = new Map(answer.data.processes.map((p) => [p.name, p.description]));
  for (const id of ["process", "filter-process"]) {
    const select = $(id);
    for (const name of names) {
      const option = document.createElement("option");
      option.value = option.textContent = name;
      select.appendChild(option);
    }
  }
  const describe = () => { $("process-help").textContent = help.get($("process").value) || ""; };
  $("process").addEventListener("change", describe);
  describe();
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function scheduleRow(schedule) {
  const tr = document.createElement("tr");
  tr.dataset.name = schedule.name;
  tr.dataset.paused = String(schedule.paused);
  const last = schedule.last ? `${schedule.last.state} ${schedule.last.fired_at}` : "";
  const when = schedule.cron ? `${schedule.cron} (${schedule.timezone})` : `every ${schedule.every_s} s`;
  tr.append(cell(schedule.name), cell(schedule.process), cell(when),
            cell(schedule.paused ? "paused" : schedule.next_at || ""), cell(last));
  const actions = document.createElement("td");
  for (const action of ["trigger", schedule.paused ? "resume" : "pause"]) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = action;
    button.dataset.action = action;
    button.addEventListener("click", () => scheduleAct(schedule.name, action));
    actions.appendChild(button);
  }
  tr.appendChild(actions);
  return tr;
}

async function loadSchedules() {
  const answer = await api("GET", "schedules");
  $("schedules-panel").hidden = !answer.ok || answer.data.schedules.length === 0;
  if (answer.ok) $("schedules").replaceChildren(...answer.data.schedules.map(scheduleRow));
}

async function scheduleAct(name, action) {
  const answer = await api("POST", `schedules/${encodeURIComponent(name)}/${action}`);
  if (!answer.ok) { notice(`${action} refused: ` + errorText(answer)); return; }
  if (action === "trigger") upsertAnswer(answer.data);
  loadSchedules();
}

async function submit(event) {
  event.preventDefault();
  const raw = $("input").value.trim() || "null";
  try { JSON.parse(raw); } catch (e) { notice("The input is not valid JSON: " + e.message); return; }
  const q = new URLSearchParams({ process: $("process").value });
  const priority = $("priority").value.trim();
  if (priority && priority !== "0") q.set("priority", priority);
  const opened = opens;
  const answer = await api("POST", "async-process/?" + q, raw);
  if (!answer.ok) { notice("Submit refused: " + errorText(answer)); return; }
  notice("");
  upsertAnswer(answer.data);
  // the stream opened while the job was submitted: its first changes may precede it
  if (live && opens !== opened) pollKnown(streamed).catch(() => {});
}

function init() {
  $("token").value = token();
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem("aioqueue.token", $("token").value.trim());
    notice("");
    jobs.clear();
    listSupported = true;
    render();
    loadList().catch(() => {}).finally(refollow);
  });
  $("submit-form").addEventListener("submit", submit);
  $("filter-process").addEventListener("change", () => { render(); loadList().catch(() => {}); });
  $("filter-state").addEventListener("change", () => { render(); loadList().catch(() => {}); });
  for (const action of ["cancel", "pause", "resume"]) {
    $(action).addEventListener("click", () => act(action));
  }
  $("close").addEventListener("click", () => { selected = null; render(); });
  loadProcesses();
  loadSchedules();
  loadList().catch(() => {}).finally(follow);
}

init();
