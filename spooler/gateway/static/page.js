// labspool's live page: the queue (or a user's own jobs) and one job's page, polled from
// the gateway's /ui/ endpoints. Every value is shown as text (textContent), never as markup.
"use strict";

const KEY = "labspool.credentials";
const state = { refreshes: 0, picture: null };

function $(id) {
  return document.getElementById(id);
}

function element(tag, text, attributes) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  return node;
}

function credentials() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("user") && fragment.get("token")) {
    sessionStorage.setItem(KEY, JSON.stringify({ user: fragment.get("user"), token: fragment.get("token") }));
    history.replaceState(null, "", location.pathname + location.search); // out of the address bar
  }
  try {
    const saved = JSON.parse(sessionStorage.getItem(KEY) || "null");
    if (saved && typeof saved.user === "string" && typeof saved.token === "string") return saved;
  } catch (e) {
    // a damaged entry: sign in again
  }
  return null;
}

function say(text, kind) {
  const box = $("message");
  box.textContent = text || "";
  box.className = kind || "";
}

function signIn(reason) {
  sessionStorage.removeItem(KEY);
  for (const id of ["overview", "job", "signout", "machine"]) $(id).hidden = true;
  $("who").textContent = "";
  $("signin").hidden = false;
  say(reason || "", reason ? "error" : "");
  document.body.dataset.view = "signin";
}

function jobIdOfPage() {
  const match = /^\/jobs\/([^/]+)$/.exec(location.pathname);
  return match ? decodeURIComponent(match[1]) : null;
}

function clock(iso) {
  if (!iso) return "";
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return "";
  const seconds = Math.round((at.getTime() - Date.now()) / 1000);
  const time = at.toLocaleTimeString([], { hour12: false });
  if (Math.abs(seconds) < 1) return `${time} (now)`;
  if (Math.abs(seconds) < 90) return `${time} (${seconds >= 0 ? "in " : ""}${Math.abs(seconds)} s${seconds < 0 ? " ago" : ""})`;
  const minutes = Math.round(seconds / 60);
  return `${time} (${minutes >= 0 ? "in " : ""}${Math.abs(minutes)} min${minutes < 0 ? " ago" : ""})`;
}

function timeOfDay(iso) {
  const at = new Date(iso);
  if (!iso || Number.isNaN(at.getTime())) return "";
  const time = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
  return at.toDateString() === new Date().toDateString() ? time : `${at.toLocaleDateString()} ${time}`;
}

// The banner at the top while the machine is not operational (everybody sees why jobs wait).
function showMachine(machine) {
  const banner = $("machine");
  const down = Boolean(machine) && !machine.operational;
  banner.hidden = !down;
  document.body.dataset.machine = !machine ? "" : down ? "down" : "operational";
  if (!down) {
    banner.textContent = "";
    return;
  }
  const since = machine.since ? ` since ${timeOfDay(machine.since)}` : "";
  const reasons = (machine.reasons || []).map((r) => `${r.component}: ${r.message}`).join("; ");
  banner.textContent = `The machine is not operational${since}: ${reasons || machine.status_msg}`;
}

function progress(job) {
  const expected = job.shots_expected || job.shots_requested || 0;
  const done = job.shots_done || 0;
  const cell = element("span", null, { class: "progress" });
  const bar = element("progress", null, { max: String(Math.max(expected, 1)), value: String(Math.min(done, Math.max(expected, 1))) });
  cell.append(bar, element("span", `${done}/${expected || "?"}`, { class: "shots" }));
  return cell;
}

function count(n) {
  return Number(n || 0).toLocaleString();
}

// The page's offset into the jobs that wait or run (?offset=N in its address), or 0.
function offsetOfPage() {
  const raw = new URLSearchParams(location.search).get("offset") || "";
  return /^\d{1,9}$/.test(raw) ? Number(raw) : 0;
}

const ACTIVE_STATES = [["RUNNING", "running"], ["QUEUED", "queued"], ["INITIALIZING", "being admitted"]];

function stateCounts(counts) {
  return ACTIVE_STATES.filter(([state]) => counts[state]).map(([state, name]) => `${count(counts[state])} ${name}`).join(", ");
}

// How many jobs wait or run (a user's: their own), and per user for an operator.
function showCounts(active) {
  const line = $("jobs-count");
  line.hidden = !active || active.total === 0;
  line.textContent = line.hidden ? "" : `${count(active.total)} waiting or running: ${stateCounts(active.by_state)}`;
  line.dataset.total = active ? String(active.total) : "";
  const users = active ? active.by_user : [];
  $("jobs-by-user").hidden = users.length === 0;
  $("jobs-by-user").replaceChildren(
    ...users.map((u) => element("li", `${u.user === null ? "(no user)" : u.user}: ${count(u.total)} (${stateCounts(u)})`, { "data-user": u.user === null ? "" : u.user })),
  );
}

// A row before or after the shown jobs that says how many there are beyond them, with a link.
function moreRow(text, offset, linkText, kind) {
  const row = element("tr", null, { class: "more", "data-more": kind });
  const cell = element("td", `${text} `, { colspan: "7" });
  cell.append(element("a", linkText, { href: offset > 0 ? `/?offset=${offset}` : "/" }));
  row.append(cell);
  return row;
}

function jobLink(jobId) {
  return element("a", jobId, { href: `/jobs/${encodeURIComponent(jobId)}` });
}

function showOverview(data) {
  $("overview").hidden = false;
  $("overview-title").textContent = data.operator ? "Queue" : "Your jobs";
  const pause = $("pause");
  pause.hidden = !data.pause;
  pause.textContent = data.pause || "";
  pause.className = data.paused ? "paused" : "scheduled";
  const body = $("jobs").tBodies[0];
  const active = data.active;
  showCounts(active);
  const rows = data.jobs.map((job) => {
    const row = element("tr", null, { "data-job": job.job_id, "data-status": job.status });
    const stateCell = element("td", null, { class: "state" });
    stateCell.append(element("span", job.status, { class: `badge ${job.status}` }));
    if (["INITIALIZING", "QUEUED", "RUNNING"].includes(job.status) && job.note) {
      stateCell.append(element("div", job.note, { class: "note" })); // why it waits, say
    }
    row.append(
      element("td", job.queue_position === null ? "" : job.queue_position, { class: "position" }),
      element("td", null, { class: "job" }),
      element("td", job.user === null ? "" : job.user, { class: "user" }),
      stateCell,
      element("td", null, { class: "progress-cell" }),
      element("td", job.status === "QUEUED" ? clock(job.estimated_start) : "", { class: "start" }),
      element("td", ["QUEUED", "RUNNING"].includes(job.status) ? clock(job.estimated_finish) : "", { class: "finish" }),
    );
    row.querySelector(".job").append(jobLink(job.job_id));
    row.querySelector(".progress-cell").append(progress(job));
    return row;
  });
  if (active) {
    const shown = data.jobs.filter((job) => ["INITIALIZING", "QUEUED", "RUNNING"].includes(job.status)).length;
    if (active.more > 0) {
      const later = moreRow(`and ${count(active.more)} more waiting or running;`, active.offset + active.shown, "the next ones", "later");
      rows.splice(shown, 0, later);
    }
    if (active.offset > 0) {
      rows.unshift(moreRow(`${count(Math.min(active.offset, active.total))} before these;`, Math.max(active.offset - active.limit, 0), "the ones before", "earlier"));
    }
  }
  body.replaceChildren(...rows);
  $("jobs-empty").hidden = rows.length > 0;
  $("errors-section").hidden = data.errors.length === 0;
  $("errors").replaceChildren(
    ...data.errors.map((e) => {
      const item = element("li", null, { "data-job": e.job_id });
      item.append(jobLink(e.job_id), element("span", ` ${e.user || ""} ${clock(e.at)}: ${e.error_message}`));
      return item;
    }),
  );
  const quarantined = data.quarantined || [];
  $("quarantine-section").hidden = quarantined.length === 0;
  $("quarantine").replaceChildren(
    ...quarantined.map((q) => {
      const item = element("li", null, { class: "quarantined" });
      item.append(element("code", q.item), element("span", ` ${clock(q.at)} (${q.daemon || "?"}${q.job_id ? ", job " + q.job_id : ""}): ${q.reason}`));
      return item;
    }),
  );
}

function fact(list, name, value) {
  if (value === null || value === undefined || value === "") return;
  list.append(element("dt", name), element("dd", value, { "data-fact": name }));
}

async function showPicture(jobId, creds) {
  if (state.picture === jobId) return;
  const answer = await fetch(`/ui/jobs/${encodeURIComponent(jobId)}/picture`, { headers: authorization(creds), cache: "no-store" });
  if (!answer.ok) return;
  const image = $("job-picture");
  image.src = URL.createObjectURL(await answer.blob());
  await image.decode().catch(() => {});
  state.picture = jobId;
  $("job-picture-section").hidden = false;
}

async function showJob(data, creds) {
  $("job").hidden = false;
  $("job-id").textContent = data.job_id;
  document.body.dataset.status = data.status;
  const facts = $("job-facts");
  facts.replaceChildren();
  fact(facts, "state", data.status);
  fact(facts, "user", data.user);
  fact(facts, "backend", data.backend);
  fact(facts, "attempt", data.attempt);
  fact(facts, "queue position", data.queue_position);
  fact(facts, "experiments", data.experiments);
  fact(facts, "elapsed", data.elapsed_s === null ? null : `${data.elapsed_s.toFixed(1)} s`);
  if (data.status === "QUEUED") fact(facts, "estimated start", clock(data.estimated_start));
  if (["QUEUED", "RUNNING"].includes(data.status)) fact(facts, "estimated finish", clock(data.estimated_finish));
  fact(facts, "submitted as", data.submitted_as);
  fact(facts, "detail", data.detail);
  $("job-progress").replaceChildren(progress(data));
  const failed = data.error_message && data.error_message !== "None";
  $("job-error").hidden = !failed;
  $("job-error").textContent = failed ? data.error_message : "";
  const result = $("job-result");
  $("job-result-section").hidden = !data.result;
  result.replaceChildren();
  if (data.result) {
    const table = element("table", null, { id: "job-result-table" });
    const head = element("tr");
    head.append(element("th", "Experiment"), element("th", "Shots"), element("th", "Most frequent outcomes"));
    table.append(head);
    for (const experiment of data.result.experiments) {
      const row = element("tr", null, { "data-experiment": experiment.name });
      const shown = experiment.counts.map(([outcome, n]) => `${outcome}: ${n}`).join(", ");
      const more = experiment.outcomes > experiment.counts.length ? ` (of ${experiment.outcomes} outcomes)` : "";
      row.append(element("td", experiment.name), element("td", experiment.shots), element("td", shown + more, { class: "counts" }));
      table.append(row);
    }
    result.append(table);
  }
  $("job-history").replaceChildren(
    ...data.history.map((t) => element("li", `${clock(t.at)}  ${t.status} (attempt ${t.attempt})${t.note ? ": " + t.note : ""}`, { "data-status": t.status })),
  );
  if (data.picture) await showPicture(data.job_id, creds);
}

function authorization(creds) {
  return { Authorization: `Bearer ${creds.user}:${creds.token}` };
}

async function refresh() {
  const creds = credentials();
  if (!creds) {
    signIn();
    return;
  }
  const jobId = jobIdOfPage();
  const offset = offsetOfPage();
  const overview = offset > 0 ? `/ui/overview?offset=${offset}` : "/ui/overview";
  const url = jobId === null ? overview : `/ui/jobs/${encodeURIComponent(jobId)}`;
  let wait = 2000;
  try {
    const answer = await fetch(url, { headers: authorization(creds), cache: "no-store" });
    const data = await answer.json();
    if (answer.status === 401) {
      signIn(`Not signed in: ${data.error_message}`);
      return;
    }
    $("signin").hidden = true;
    $("signout").hidden = false;
    $("who").textContent = creds.user;
    if (answer.ok) {
      say("");
      showMachine(data.machine);
      if (jobId === null) showOverview(data);
      else await showJob(data, creds);
      if (data.refresh_s) wait = data.refresh_s * 1000;
      $("updated").textContent = new Date().toLocaleTimeString([], { hour12: false });
    } else {
      say(data.error_message || `the gateway answered ${answer.status}`, "error");
      if (answer.status === 429) wait = 5000;
      if (answer.status === 404) $("job").hidden = true;
    }
    $("backend").textContent = data.backend || $("backend").textContent;
    document.body.dataset.view = jobId === null ? "overview" : "job";
  } catch (e) {
    say(`The gateway does not answer (${e.message}); trying again.`, "error");
    wait = 5000;
  }
  state.refreshes += 1;
  document.body.dataset.refreshes = String(state.refreshes);
  setTimeout(refresh, wait);
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, JSON.stringify({ user: $("signin-user").value, token: $("signin-token").value }));
    $("signin-token").value = "";
    refresh();
  });
  $("signout").addEventListener("click", () => signIn());
  refresh();
});
