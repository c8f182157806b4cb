// The taskjob dashboard's pages. Data comes from the dashboard server only: one event stream per open
// view (/api/stream), pushed on change; nothing here polls. Countdowns tick locally against the server's
// clock (the offset is taken from each snapshot's `now`).
"use strict";

const TASK_PHASES = ["Waiting", "Ready", "Running", "Retrying", "Succeeded", "Failed", "Skipped"];
const TJ_PHASES = ["Pending", "Running", "Succeeded", "Failed", "Suspended", "Invalid"];
const css = getComputedStyle(document.documentElement);
const fill = (p) => css.getPropertyValue("--" + p).trim() || "#eee";
const border = (p) => css.getPropertyValue("--" + p + "-b").trim() || "#999";
let clockOffset = 0; // server time minus browser time, ms

// ---------------------------------------------------------------- helpers

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
function el(id) { return document.getElementById(id); }
function serverNow() { return Date.now() + clockOffset; }
function takeClock(now) { if (now) clockOffset = Date.parse(now) - Date.now(); }
function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return seconds + "s";
  const m = Math.floor(seconds / 60), s = seconds % 60;
  if (m < 60) return m + "m" + (s ? " " + s + "s" : "");
  const h = Math.floor(m / 60);
  if (h < 48) return h + "h" + (m % 60 ? " " + (m % 60) + "m" : "");
  return Math.floor(h / 24) + "d";
}
function ago(iso) { return iso ? duration((serverNow() - Date.parse(iso)) / 1000) + " ago" : "–"; }
function time(iso) { return iso ? new Date(iso).toLocaleTimeString() : "–"; }
function badge(phase) {
  return `<span class="badge" style="background:${fill(phase)};border-color:${border(phase)}">${esc(phase)}</span>`;
}
function countdown(iso) {
  return iso ? `<span class="countdown" data-until="${esc(iso)}">${countdownText(iso)}</span>` : "";
}
function countdownText(iso) {
  const left = (Date.parse(iso) - serverNow()) / 1000;
  return left > 0 ? "retry in " + duration(left) : "retry starting…";
}
// Ages and running durations tick here: a page whose TaskJobs do not change gets no new snapshot.
function since(iso, fallback) {
  return iso ? `<span data-since="${esc(iso)}">${duration((serverNow() - Date.parse(iso)) / 1000)}</span>` : duration(fallback);
}
setInterval(() => {
  for (const node of document.querySelectorAll("[data-until]")) node.textContent = countdownText(node.dataset.until);
  for (const node of document.querySelectorAll("[data-since]")) node.textContent = duration((serverNow() - Date.parse(node.dataset.since)) / 1000);
  if (graphView) graphView.tick();
}, 1000);
function progressBar(r) {
  const total = Math.max(r.total || 0, 1);
  const part = (n, p) => n ? `<span style="width:${(100 * n / total).toFixed(2)}%;background:${border(p)}"></span>` : "";
  return `<div class="progress" title="${esc(r.progress)}">${part(r.succeeded, "Succeeded")}${part(r.failed, "Failed")}` +
    `${part(r.skipped, "Skipped")}${part(r.running, "Running")}</div>`;
}

// One EventSource per view; reconnects by itself (the browser's own retry) and says so in the header.
function subscribe(params, onData) {
  const source = new EventSource("/api/stream?" + new URLSearchParams(params));
  source.onopen = () => { el("live").textContent = "live"; el("live").className = "live on"; };
  source.onerror = () => { el("live").textContent = "reconnecting…"; el("live").className = "live off"; };
  source.onmessage = (msg) => {
    const data = JSON.parse(msg.data);
    takeClock(data.now);
    showErrors(data.errors || [], data.ready);
    onData(data);
  };
  return source;
}
function showErrors(errors, ready) {
  const box = el("errors");
  const lines = errors.slice();
  if (ready === false && !errors.length) lines.push("Loading: waiting for the first listing from the API server…");
  box.hidden = !lines.length;
  box.innerHTML = lines.map(esc).join("<br>");
}

// ---------------------------------------------------------------- overview

function overviewPage() {
  el("crumbs").innerHTML = "TaskJobs";
  const params = new URLSearchParams(location.search);
  el("main").innerHTML = `
    <div class="cards" id="cards"></div>
    <div class="section"><h2>Last failures</h2><div id="failures"></div></div>
    <div class="section"><h2>TaskJobs <span class="sub" id="count"></span></h2>
      <div class="filters">
        <input id="q" type="search" placeholder="Search by name" value="${esc(params.get("q") || "")}">
        <select id="ns"><option value="">All namespaces</option></select>
        <select id="phase"><option value="">All phases</option>${TJ_PHASES.map((p) => `<option>${p}</option>`).join("")}</select>
        <input id="label" placeholder="label: key=value" value="${esc(params.get("label") || "")}">
      </div>
      <div id="list"></div></div>`;
  el("phase").value = params.get("phase") || "";
  let last = null;
  const keepInUrl = () => {
    const p = new URLSearchParams();
    for (const id of ["q", "ns", "phase", "label"]) if (el(id).value) p.set(id, el(id).value);
    history.replaceState(null, "", p.toString() ? "?" + p : "/");
    if (last) renderList(last);
  };
  for (const id of ["q", "ns", "phase", "label"]) el(id).addEventListener("input", keepInUrl);
  pageStream = subscribe({view: "overview"}, (data) => {
    last = data;
    renderCards(data);
    renderFailures(data.lastFailures);
    const ns = el("ns"), chosen = ns.value || params.get("ns") || "";
    const options = `<option value="">All namespaces</option>` + data.namespaces.map((n) => `<option>${esc(n)}</option>`).join("");
    if (ns.dataset.options !== options) { ns.innerHTML = options; ns.dataset.options = options; ns.value = chosen; }
    renderList(data);
  });
}

function chips(counts) {
  return `<div class="chips">${Object.entries(counts).filter(([, n]) => n).map(([p, n]) =>
    `<span class="chip" style="background:${fill(p)};border-color:${border(p)}">${esc(p)} <b>${n}</b></span>`).join("") ||
    '<span class="sub">none</span>'}</div>`;
}

function renderCards(d) {
  const tjTotal = Object.values(d.taskjobPhases).reduce((a, b) => a + b, 0);
  const taskTotal = Object.values(d.taskPhases).reduce((a, b) => a + b, 0);
  const rate = d.failureRate === null ? "–" : (100 * d.failureRate).toFixed(1) + "%";
  el("cards").innerHTML = `
    <div class="card"><h3>TaskJobs</h3><div class="big">${tjTotal}</div>${chips(d.taskjobPhases)}</div>
    <div class="card"><h3>Tasks</h3><div class="big">${taskTotal}</div>${chips(d.taskPhases)}</div>
    <div class="card"><h3>Tasks finished per minute</h3><div class="big">${d.throughput.last5.toFixed(1)}</div>
      <div class="sub">last 5 minutes · ${d.throughput.last60.toFixed(1)} over the last 60 minutes</div></div>
    <div class="card"><h3>Failure rate (60 min)</h3><div class="big">${rate}</div>
      <div class="sub">${d.failedLast60} failed of ${d.finishedLast60} finished tasks</div></div>`;
}

function renderFailures(failures) {
  if (!failures.length) { el("failures").innerHTML = '<div class="empty">No failed attempts.</div>'; return; }
  failures = failures.slice(0, 8); // the newest; the TaskJob pages have the rest
  el("failures").innerHTML = `<table><thead><tr><th>Task</th><th>Reason</th><th class="num">Exit code</th>
    <th class="num">Attempt</th><th>When</th><th>Next</th><th>Message</th></tr></thead><tbody>` +
    failures.map((f) => `<tr><td><a href="${tjHref(f.namespace, f.taskjob)}?task=${encodeURIComponent(f.task)}">${esc(f.taskjob)} / ${esc(f.task)}</a>
      <span class="sub">${esc(f.namespace)}</span></td><td>${esc(f.reason || "–")}</td>
      <td class="num">${f.exitCode ?? "–"}</td><td class="num">${f.attempt}</td><td>${f.when ? since(f.when) + " ago" : "–"}</td>
      <td>${f.phase === "Retrying" ? countdown(f.nextRetryTime) : f.phase === "Retried" ? "retried" : f.phase === "Failed" ? "failed for good" : esc(f.phase || "")}</td>
      <td class="msg" title="${esc(f.message)}">${esc(f.message)}</td></tr>`).join("") + "</tbody></table>";
}

function tjHref(ns, name) { return `/taskjobs/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`; }

const LIST_LIMIT = 500; // rows drawn at once; the rest are behind the filters
function renderList(d) {
  const q = el("q").value.trim().toLowerCase(), ns = el("ns").value, phase = el("phase").value;
  const [lk, lv] = el("label").value.split("=").map((s) => s && s.trim());
  const rows = d.taskjobs.filter((r) => (!q || r.name.toLowerCase().includes(q)) && (!ns || r.namespace === ns) &&
    (!phase || r.phase === phase) && (!lk || (lk in r.labels && (lv === undefined || r.labels[lk] === lv))));
  el("count").textContent = rows.length === d.taskjobs.length ? `${rows.length}` : `${rows.length} of ${d.taskjobs.length}`;
  if (!rows.length) {
    el("list").innerHTML = `<div class="empty">${d.taskjobs.length ? "No TaskJob matches the filters." :
      "No TaskJobs yet: <code>kubectl apply -f examples/diamond.yaml</code>"}</div>`;
    return;
  }
  el("list").innerHTML = `<table><thead><tr><th>Name</th><th>Namespace</th><th>Phase</th><th>Progress</th>
    <th class="num">Running</th><th class="num">Age</th><th class="num">Duration</th><th>Message</th></tr></thead><tbody>` +
    rows.slice(0, LIST_LIMIT).map((r) => `<tr data-taskjob="${esc(r.namespace)}/${esc(r.name)}">
      <td><a href="${tjHref(r.namespace, r.name)}">${esc(r.name)}</a></td><td>${esc(r.namespace)}</td>
      <td>${badge(r.phase)}</td><td>${progressBar(r)} <span class="sub">${esc(r.progress)}</span></td>
      <td class="num">${r.running}</td><td class="num">${since(r.created, r.age)}</td>
      <td class="num">${r.completed || !r.started ? duration(r.duration) : since(r.started)}</td>
      <td class="msg" title="${esc(r.message)}">${esc(r.message)}</td></tr>`).join("") + "</tbody></table>" +
    (rows.length > LIST_LIMIT ? `<div class="empty">${rows.length - LIST_LIMIT} more: narrow the filters.</div>` : "");
}

// ---------------------------------------------------------------- one TaskJob

let graphView = null;

class GraphView {
  constructor(container, onSelect) {
    this.cy = cytoscape({
      container, minZoom: 0.05, maxZoom: 2.5, boxSelectionEnabled: false,
      style: [
        {selector: "node", style: {
          "shape": "round-rectangle", "label": "data(text)", "text-valign": "center", "text-halign": "center",
          "text-wrap": "wrap", "font-size": 12, "width": "data(w)", "height": "data(h)",
          "background-color": "data(fill)", "border-color": "data(border)", "border-width": 2, "color": "#1d2330"}},
        {selector: "node.group", style: {"border-style": "double", "border-width": 4, "font-weight": "bold"}},
        {selector: "node.running", style: {"border-width": 4}},
        {selector: "node.blink", style: {"border-color": "#7ab0ff"}},
        {selector: "node:selected", style: {"overlay-color": "#2f6fdb", "overlay-opacity": 0.15, "overlay-padding": 6}},
        {selector: "edge", style: {"width": 1.5, "line-color": "#adb5bd", "target-arrow-color": "#adb5bd",
          "target-arrow-shape": "triangle", "curve-style": "bezier"}},
      ],
    });
    this.shape = "";
    this.nodes = [];
    this.cy.on("tap", "node", (e) => onSelect(e.target.data()));
    this.blink = false;
  }
  label(n) {
    if (n.group) return `${n.count.toLocaleString("en")}\n${n.phase}`; // the layer is its column
    let text = n.label;
    if (n.attempts > 1 || n.phase === "Retrying") text += `\nattempt ${n.attempts}`;
    if (n.phase === "Retrying" && n.nextRetryTime) text += "\n" + countdownText(n.nextRetryTime);
    else if (n.phase === "Failed" && n.exitCode !== null && n.exitCode !== undefined) text += `\nexit ${n.exitCode}`;
    return text;
  }
  update(graph) {
    this.nodes = graph.nodes;
    const shape = graph.nodes.map((n) => n.id).join("|") + "#" + graph.edges.map((e) => e.source + ">" + e.target).join("|");
    const cy = this.cy;
    if (shape !== this.shape) {
      cy.container().style.height = graph.nodes.length <= 12 ? "380px" : "560px"; // no sea of white around a small DAG
      cy.elements().remove();
      cy.add(graph.nodes.map((n) => ({group: "nodes", data: {id: n.id}})));
      cy.add(graph.edges.map((e) => ({group: "edges", data: {id: e.source + ">" + e.target, source: e.source, target: e.target}})));
      this.apply();
      const grouped = graph.grouped;
      cy.layout({name: "dagre", rankDir: "LR", nodeSep: grouped ? 10 : 18, rankSep: grouped ? 36 : 60, fit: false, animate: false}).run();
      this.refit();
      this.shape = shape;
    } else {
      this.apply();
    }
  }
  apply() {
    this.cy.batch(() => {
      for (const n of this.nodes) {
        const node = this.cy.getElementById(n.id);
        const text = this.label(n), lines = text.split("\n");
        const w = 24 + 7.2 * Math.max(...lines.map((l) => l.length)), h = 18 + 15 * lines.length;
        node.data({...n, text, w, h, fill: fill(n.phase), border: border(n.phase)});
        node.toggleClass("group", !!n.group);
        node.toggleClass("running", n.phase === "Running");
        node.data("phaseClass", n.phase);
      }
    });
  }
  tick() {
    // Running tasks pulse; retry countdowns in labels count down.
    this.blink = !this.blink;
    this.cy.batch(() => {
      this.cy.nodes(".running").toggleClass("blink", this.blink);
      this.cy.nodes(".blink").not(".running").removeClass("blink");
      for (const n of this.nodes) {
        if (n.phase === "Retrying") this.cy.getElementById(n.id).data("text", this.label(n));
      }
    });
  }
  refit() {
    this.cy.resize();
    this.cy.fit(undefined, 24);
    if (this.cy.zoom() > 1.3) { this.cy.zoom(1.3); this.cy.center(); } // a small DAG stays at reading size
  }
  select(id) { this.cy.$(":selected").unselect(); this.cy.getElementById(id).select(); }
}

// The graph libraries (450 KB) load only on the pages that draw a graph.
const GRAPH_SCRIPTS = ["/static/vendor/cytoscape.min.js", "/static/vendor/cytoscape-dagre.min.js"];
function loadScripts(urls) {
  return urls.reduce((ready, url) => ready.then(() => new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = url;
    script.onload = resolve;
    script.onerror = () => reject(new Error("cannot load " + url));
    document.head.appendChild(script);
  })), Promise.resolve());
}

async function taskjobPage(ns, name) {
  el("crumbs").innerHTML = `<a href="/">TaskJobs</a> / ${esc(ns)} / <b>${esc(name)}</b>`;
  document.title = `${name} · taskjob`;
  el("main").innerHTML = `
    <div class="section"><div class="summary" id="summary"></div><div class="confirm" id="confirm" hidden></div></div>
    <div class="layout nopanel" id="layout">
      <div>
        <div class="section">
          <div class="tabs" id="tabs">
            <button data-tab="graph" class="active">Graph</button><button data-tab="timeline">Timeline</button>
            <button data-tab="tasks">Tasks</button><button data-tab="events">Events</button><button data-tab="manifest">Manifest</button>
          </div>
          <div data-pane="graph"><div id="graph"></div><div class="legend">${TASK_PHASES.map(badge).join("")}
            <span class="sub">· click a task for its attempts, logs and events; large layers are grouped by phase</span></div></div>
          <div data-pane="timeline" hidden><div id="timeline"></div></div>
          <div data-pane="tasks" hidden><div id="tasklist"></div></div>
          <div data-pane="events" hidden><div id="tjevents"></div></div>
          <div data-pane="manifest" hidden><pre class="manifest" id="manifest">loading…</pre></div>
        </div>
      </div>
      <aside class="panel" id="panel" hidden></aside>
    </div>`;
  let data = null;
  const showTab = (tab) => {
    for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === tab);
    for (const p of document.querySelectorAll("[data-pane]")) p.hidden = p.dataset.pane !== tab;
    if (tab === "graph" && graphView) graphView.refit();
    if (tab === "manifest") fetch(`/api/manifest/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`)
      .then((r) => r.text()).then((t) => { el("manifest").textContent = t; });
    if (data) renderTab(tab, data);
  };
  let current = "graph";
  el("tabs").addEventListener("click", (e) => { if (e.target.dataset.tab) { current = e.target.dataset.tab; showTab(current); } });
  await loadScripts(GRAPH_SCRIPTS);
  graphView = new GraphView(el("graph"), (node) => {
    if (node.group) showGroup(node, data); else openTask(ns, name, node.task);
  });
  pageHandler = (d) => {
    if (d.gone) { el("summary").innerHTML = `<h1>${esc(name)}</h1> <span class="sub">This TaskJob no longer exists.</span>`; return; }
    data = d;
    renderSummary(d);
    graphView.update(d.graph);
    renderTab(current, d);
    if (d.panel && panelTask) renderPanel(ns, d.panel);
  };
  const selected = new URLSearchParams(location.search).get("task");
  if (selected) openTask(ns, name, selected); else connect(ns, name, null);
}

// One stream per page (the open task's panel rides on it): browsers allow 6 connections per host.
let pageStream = null, pageHandler = null, panelTask = null;
function connect(ns, name, task) {
  if (pageStream) pageStream.close();
  const params = {view: "taskjob", namespace: ns, name};
  if (task) params.task = task;
  pageStream = subscribe(params, (d) => pageHandler && pageHandler(d));
}
window.addEventListener("pagehide", () => { // a page kept in the back/forward cache must not hold connections
  if (pageStream) pageStream.close();
  if (logStream) logStream.close();
});

function renderSummary(d) {
  const s = d.summary;
  const done = ["Succeeded", "Failed", "Invalid"].includes(s.phase);
  const offered = {retry: d.taskPhases.Failed + d.taskPhases.Skipped > 0, suspend: !done && s.phase !== "Suspended",
    resume: s.phase === "Suspended", delete: true};
  const buttons = d.actions ? `<span class="actions">${Object.keys(offered).filter((a) => offered[a]).map((a) =>
    `<button class="act" data-action="${a}">${a}</button>`).join("")}</span>` : "";
  el("summary").innerHTML = `<h1>${esc(s.name)}</h1>${badge(s.phase)}${progressBar(s)}<span>${esc(s.progress)} succeeded</span>
    ${chips(d.taskPhases)}<span class="sub">age ${since(s.created, s.age)} · duration ${s.completed || !s.started ? duration(s.duration) : since(s.started)}</span>${buttons}
    <span class="sub" style="flex-basis:100%">${esc(s.message)}</span>`;
  for (const b of document.querySelectorAll("button.act")) b.onclick = () => confirmAction(s.namespace, s.name, b.dataset.action);
}

// Actions (only when the server allows them): typed confirmation, then one POST carrying the name.
function confirmAction(ns, name, action) {
  const box = el("confirm");
  box.hidden = false;
  box.innerHTML = `<b>${esc(action)}</b> TaskJob ${esc(ns)}/${esc(name)}? Type its name to confirm:
    <input id="confirmname" autocomplete="off"> <button class="act" id="confirmgo" disabled>${esc(action)}</button>
    <button class="act" id="confirmcancel">cancel</button> <span id="confirmresult" class="sub"></span>`;
  const input = el("confirmname");
  input.focus();
  input.oninput = () => { el("confirmgo").disabled = input.value !== name; };
  el("confirmcancel").onclick = () => { box.hidden = true; };
  el("confirmgo").onclick = async () => {
    const resp = await fetch(`/api/actions/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/${action}`,
      {method: "POST", headers: {"X-Taskjob-Confirm": input.value}});
    const text = resp.headers.get("Content-Type")?.includes("json") ? (await resp.json()).message : await resp.text();
    box.innerHTML = `<span class="${resp.ok ? "" : "warn"}">${esc(text)}</span> <button class="act" id="confirmcancel">close</button>`;
    el("confirmcancel").onclick = () => { box.hidden = true; };
  };
}

function renderTab(tab, d) {
  if (tab === "timeline") renderTimeline(d.timeline);
  if (tab === "tasks") renderTaskList(d.tasks);
  if (tab === "events") el("tjevents").innerHTML = eventsTable(d.events);
}

function renderTaskList(tasks) {
  const shown = tasks.slice(0, 2000);
  el("tasklist").innerHTML = `<table><thead><tr><th>Task</th><th>Phase</th><th class="num">Attempt</th><th class="num">Exit code</th>
    <th>Reason</th><th>Started</th><th>Finished</th></tr></thead><tbody>` + shown.map((t) => `<tr>
    <td><button class="link" data-task="${esc(t.name)}">${esc(t.name)}</button></td><td>${badge(t.phase)} ${t.phase === "Retrying" ? countdown(t.nextRetryTime) : ""}</td>
    <td class="num">${t.attempts}</td><td class="num">${t.exitCode ?? "–"}</td><td>${esc(t.reason)}</td>
    <td>${time(t.startTime)}</td><td>${time(t.finishTime)}</td></tr>`).join("") + "</tbody></table>" +
    (tasks.length > shown.length ? `<div class="empty">${tasks.length - shown.length} more tasks not listed.</div>` : "");
}

function renderTimeline(t) {
  if (!t.bars.length) { el("timeline").innerHTML = '<div class="empty">No attempt has started yet.</div>'; return; }
  const now = Date.parse(t.now);
  const start = Math.min(...t.bars.map((b) => Date.parse(b.start || t.now)));
  const end = Math.max(now, ...t.bars.map((b) => Date.parse(b.finish || t.now)));
  const span = Math.max(end - start, 1000);
  const rows = new Map();
  for (const b of t.bars) { if (!rows.has(b.task)) rows.set(b.task, []); rows.get(b.task).push(b); }
  const pct = (ms) => (100 * (ms - start) / span).toFixed(3);
  el("timeline").innerHTML = `<div class="gantt"><div class="axis"><span>${time(new Date(start).toISOString())}</span>
    <span>${duration(span / 1000)}</span><span>${time(new Date(end).toISOString())}</span></div>` +
    [...rows.entries()].map(([task, bars]) => `<div class="row"><div class="label" title="${esc(task)}">${esc(task)}</div>
      <div class="track">${bars.map((b) => {
        const s = Date.parse(b.start || t.now), f = b.finish ? Date.parse(b.finish) : now;
        return `<div class="bar" title="${esc(task)} attempt ${b.attempt}: ${b.outcome}, ${duration((f - s) / 1000)}"
          style="left:${pct(s)}%;width:${Math.max(0, pct(f) - pct(s))}%;background:${fill(b.outcome)};border-color:${border(b.outcome)}"></div>`;
      }).join("")}</div></div>`).join("") +
    (t.omitted ? `<div class="empty">${t.omitted} more attempts not drawn.</div>` : "") + "</div>";
}

function eventsTable(events) {
  if (!events.length) return '<div class="empty">No events.</div>';
  return `<table><thead><tr><th>When</th><th>Type</th><th>Reason</th><th>Object</th><th>Message</th></tr></thead><tbody>` +
    events.slice().reverse().map((e) => `<tr><td>${ago(e.time)}</td><td>${esc(e.type)}</td><td>${esc(e.reason)}</td>
    <td class="sub">${esc(e.object)}</td><td>${esc(e.message)}${e.count > 1 ? ` <span class="sub">×${e.count}</span>` : ""}</td></tr>`).join("") +
    "</tbody></table>";
}

function eventsList(events) {
  if (!events.length) return '<div class="empty">No events.</div>';
  return events.slice().reverse().map((e) => `<div class="event"><span class="sub">${ago(e.time)} · ${esc(e.object)}</span><br>
    <b class="${e.type === "Warning" ? "warn" : ""}">${esc(e.reason)}</b> ${esc(e.message)}${e.count > 1 ? ` <span class="sub">×${e.count}</span>` : ""}</div>`).join("");
}

document.addEventListener("click", (e) => {
  const task = e.target.closest && e.target.closest("[data-task]");
  if (task && e.target.tagName === "BUTTON") {
    const [, , ns, name] = location.pathname.split("/").map(decodeURIComponent);
    openTask(ns, name, task.dataset.task);
  }
});

function showGroup(node, data) {
  const panel = el("panel");
  el("layout").classList.remove("nopanel");
  panel.hidden = false;
  const tasks = data.tasks.filter((t) => t.layer === node.layer && t.phase === node.phase);
  panel.innerHTML = `<h2>${badge(node.phase)} layer ${node.layer}: ${tasks.length} tasks<button class="close" id="close">×</button></h2>
    <div style="padding:8px 14px"><input id="gq" type="search" placeholder="Filter tasks" style="width:100%"></div>
    <div class="grouplist" id="glist"></div>`;
  const draw = () => {
    const q = el("gq").value.toLowerCase();
    const shown = tasks.filter((t) => t.name.toLowerCase().includes(q));
    el("glist").innerHTML = shown.slice(0, 300).map((t) => `<div><button class="link" data-task="${esc(t.name)}">${esc(t.name)}</button>
      <span class="sub">attempt ${t.attempts}${t.exitCode !== null ? ", exit " + t.exitCode : ""}</span></div>`).join("") +
      (shown.length > 300 ? `<div class="sub">${shown.length - 300} more: filter by name</div>` : "");
  };
  el("gq").addEventListener("input", draw);
  if (graphView) graphView.refit();
  el("close").onclick = closePanel;
  draw();
}

let logStream = null, logPod = null;
function closePanel() {
  if (logStream) logStream.close();
  logStream = logPod = panelTask = null;
  el("panel").hidden = true;
  el("layout").classList.add("nopanel");
  history.replaceState(null, "", location.pathname);
  if (graphView) graphView.refit();
  const [, , ns, name] = location.pathname.split("/").map(decodeURIComponent);
  connect(ns, name, null);
}

function openTask(ns, name, task) {
  if (logStream) logStream.close();
  logStream = logPod = null;
  panelTask = task;
  const panel = el("panel");
  el("layout").classList.remove("nopanel");
  panel.hidden = false;
  history.replaceState(null, "", location.pathname + "?task=" + encodeURIComponent(task));
  if (graphView) { graphView.refit(); graphView.select("task:" + task); }
  panel.innerHTML = `<h2 id="ptitle">${esc(task)}<button class="close" id="close">×</button></h2>
    <div id="pbody"><div class="empty">loading…</div></div>
    <h4>Log <span id="logwhich" class="sub"></span></h4><div class="loginfo" id="loginfo"></div><pre id="log"></pre>
    <h4>Events</h4><div id="pevents"></div>`;
  el("close").onclick = closePanel;
  connect(ns, name, task);
}

function renderPanel(ns, d) {
  if (d.gone) { el("pbody").innerHTML = '<div class="empty">No such task.</div>'; return; }
  const t = d.task;
  if (t.name !== panelTask) return;
  el("ptitle").innerHTML = `${esc(t.name)} ${badge(t.phase)} ${t.phase === "Retrying" ? countdown(t.nextRetryTime) : ""}<button class="close" id="close">×</button>`;
  el("close").onclick = closePanel;
  el("pbody").innerHTML = (t.message ? `<div class="loginfo" style="margin-top:10px">${esc(t.reason)}: ${esc(t.message)}</div>` : "") +
    `<h4>Attempts (${d.attempts.length})</h4>` +
    (d.attempts.length ? d.attempts.slice().reverse().map(attemptBox).join("") : '<div class="empty">No attempt yet.</div>');
  el("pevents").innerHTML = eventsList(d.events);
  const latest = d.attempts[d.attempts.length - 1];
  if (!latest || !latest.pod) { el("log").textContent = "(no pod yet)"; el("logwhich").textContent = ""; }
  if (latest && latest.pod && (latest.pod !== logPod?.pod || (logPod.running && !latest.running))) {
    logPod = latest;
    followLog(ns, latest);
  }
}

function attemptBox(a) {
  const rows = [["Job", a.job], ["Pod", a.pod], ["Node", a.node], ["Started", a.start ? `${time(a.start)} (${ago(a.start)})` : null],
    ["Finished", a.finish ? time(a.finish) : null], ["Duration", a.start ? duration(a.duration) : null],
    ["Exit code", a.exitCode], ["Reason", a.reason], ["Message", a.message]]
    .filter(([, v]) => v !== null && v !== undefined && v !== "");
  return `<div class="attempt" data-attempt="${a.attempt}"><b>Attempt ${a.attempt}</b> ${badge(a.outcome)}
    <dl>${rows.map(([k, v]) => `<dt>${k}</dt><dd>${esc(v)}</dd>`).join("")}</dl>` +
    (a.output ? `<div class="sub" style="margin-top:6px">Output</div><pre style="margin:4px 0 0">${esc(a.output)}</pre>` : "") + "</div>";
}

function followLog(ns, attempt) {
  if (logStream) logStream.close();
  const box = el("log");
  box.textContent = "";
  box.hidden = false;
  el("logwhich").textContent = `attempt ${attempt.attempt} · pod ${attempt.pod}`;
  el("loginfo").textContent = attempt.running ? "streaming while the task runs" : "the last lines";
  const params = new URLSearchParams({follow: attempt.running ? "1" : "0"});
  logStream = new EventSource(`/api/logs/${encodeURIComponent(ns)}/${encodeURIComponent(attempt.pod)}?${params}`);
  let lines = 0;
  logStream.addEventListener("line", (e) => {
    const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    box.textContent += JSON.parse(e.data) + "\n";
    lines++;
    if (atBottom) box.scrollTop = box.scrollHeight;
  });
  logStream.addEventListener("end", (e) => {
    el("loginfo").textContent = JSON.parse(e.data) + (lines ? ` · ${lines} lines` : "");
    if (!lines) box.textContent = "(no output)";
    box.hidden = !lines && JSON.parse(e.data).startsWith("(no log");
    logStream.close();
  });
}

// ---------------------------------------------------------------- routing

window.addEventListener("DOMContentLoaded", () => {
  const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "taskjobs" && parts.length === 3) taskjobPage(parts[1], parts[2]);
  else overviewPage();
});
