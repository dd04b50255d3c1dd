// nemod dashboard: live updates by polling the JSON endpoints every 2 s.
// Every value is written with textContent, never as HTML, so file names stay text.
"use strict";

(function () {
  const PERIOD = 2000;
  const body = document.body;

  function cell(row, content) {
    const td = document.createElement("td");
    if (content instanceof Node) td.appendChild(content); else td.textContent = content;
    row.appendChild(td);
  }

  function link(job) {
    const a = document.createElement("a");
    a.href = "/jobs/" + encodeURIComponent(job.id);
    a.textContent = job.file;
    return a;
  }

  // Speed of each running job's current step, from the progress seen so far: job id →
  // {step, time, fraction} of the first sighting of that step.
  const seen = {};

  function left(job) {
    const now = Date.now() / 1000;
    const first = seen[job.id];
    if (!first || first.step !== job.step || job.progress < first.fraction) {
      seen[job.id] = {step: job.step, time: now, fraction: job.progress};
      return "";
    }
    const rate = (job.progress - first.fraction) / (now - first.time);
    if (!(rate > 0) || now - first.time < 2) return "";
    const seconds = Math.round((1 - job.progress) / rate);
    return seconds < 90 ? " · ~" + seconds + " s left" : " · ~" + Math.round(seconds / 60) + " min left";
  }

  function progress(job) {
    const span = document.createElement("span");
    const step = document.createElement("span");
    step.className = "step";
    step.textContent = job.step || "starting";
    span.appendChild(step);
    if (job.progress !== null && job.progress !== undefined) {
      const pct = Math.max(0, Math.min(100, Math.round(job.progress * 100)));
      const bar = document.createElement("progress");
      bar.max = 100; bar.value = pct;
      const text = document.createElement("span");
      text.className = "pct"; text.textContent = pct + "%";
      const eta = document.createElement("span");
      eta.className = "eta"; eta.textContent = left(job);
      span.append(" ", bar, " ", text, eta);
    }
    return span;
  }

  function fill(id, jobs, columns, empty) {
    const tbody = document.getElementById(id);
    if (!tbody) return;
    const rows = jobs.map(function (job, index) {
      const tr = document.createElement("tr");
      columns(job, index).forEach(function (c) { cell(tr, c); });
      return tr;
    });
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = document.createElement("td");
      td.colSpan = tbody.parentNode.querySelectorAll("th").length;
      td.textContent = empty;
      tr.appendChild(td);
      rows.push(tr);
    }
    tbody.replaceChildren.apply(tbody, rows);
  }

  function overview(data) {
    document.getElementById("daemon").textContent = data.daemon;
    document.querySelectorAll("#counts li").forEach(function (li) {
      li.querySelector("b").textContent = data.counts[li.className] || 0;
    });
    document.querySelectorAll("#folders span[data-folder]").forEach(function (span) {
      const folder = data.folders.find(function (f) { return f.folder === span.dataset.folder; });
      if (folder) span.textContent = folder.counts[span.dataset.state] || 0;
    });
    fill("running", data.running, function (j) {
      return [link(j), j.rule, progress(j), String(j.attempts), j.host || ""];
    }, "nothing");
    fill("queue", data.queue, function (j, i) {
      const later = j.not_before && j.not_before > data.taken_at;
      return [String(i + 1), link(j), j.rule, j.state,
              later ? new Date(j.not_before * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "now",
              j.reason || ""];
    }, "empty");
    fill("failures", data.failures, function (j) {
      return [link(j), j.rule, j.finished, j.reason || ""];
    }, "none");
  }

  function job(data) {
    const state = document.getElementById("state");
    if (state) state.textContent = data.label;
    const where = document.getElementById("progress");
    if (where) where.replaceChildren(data.state === "running" ? progress(data) : "-");
    if (data.state !== body.dataset.state) {
      window.location.reload();  // a new state brings new facts, outputs and buttons
    }
  }

  function poll(url, apply) {
    fetch(url, {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) apply(data); })
      .catch(function () { /* the daemon restarts: try again next time */ })
      .finally(function () { window.setTimeout(function () { poll(url, apply); }, PERIOD); });
  }

  if (body.dataset.page === "overview") {
    window.setTimeout(function () { poll("/api/overview", overview); }, PERIOD);
  } else if (body.dataset.page === "job" && ["queued", "waiting", "running"].includes(body.dataset.state)) {
    window.setTimeout(function () { poll("/api/jobs/" + encodeURIComponent(body.dataset.job), job); }, PERIOD / 2);
  }
})();
