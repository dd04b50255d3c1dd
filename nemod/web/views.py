"""The dashboard's HTML pages, drawn from the adapter's plain data (pure).

Every value that came from a file name, a rule, a config or an error goes through
:func:`html.escape` (the ``_e`` helper) — a file named ``<img src=x onerror=alert(1)>.mp4``
shows as that text. Pages carry no inline script: ``/static/app.js`` does the live
updates, allowed by the Content-Security-Policy the server sends.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from nemod import languages
from nemod.draft import log_timeline
from nemod.service.status import STATES, JobLine
from nemod.web.advice import advise
from nemod.web.data import JobDetail, JobFilter, JobPage, Overview


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def when(seconds: float | None) -> str:
    """A time for people (UTC, to the second), ``-`` for none."""
    if seconds is None:
        return "-"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def size_text(size: int | None) -> str:
    """``12.3 MB`` style sizes."""
    if size is None:
        return "missing"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


#: Where the header's "log out" button goes; :func:`signed_in` fills it when a login is
#: required (the pages themselves do not know).
ACCOUNT = "<!--account-->"


def signed_in(text: str, csrf: str) -> str:
    """``text`` (a page) with a "log out" button in its header."""
    button = (f'<form method=post action="/logout" class="inline logout"><input type=hidden name=csrf '
              f'value="{_e(csrf)}"><button type=submit>Log out</button></form>')
    return text.replace(ACCOUNT, button, 1)


def page(title: str, body: str, *, csrf: str, kind: str, data: Mapping[str, str] | None = None) -> str:
    """A whole page: ``kind`` names it for the script (``overview``, ``job``, …); ``data``
    adds ``data-*`` attributes to ``<body>`` (escaped)."""
    attrs = "".join(f' data-{_e(k)}="{_e(v)}"' for k, v in (data or {}).items())
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)} · nemod</title>"
        '<link rel=icon href="/static/icon.svg"><link rel=stylesheet href="/static/style.css"><script src="/static/app.js" defer></script>'
        f'</head><body data-page="{_e(kind)}"{attrs}>'
        f'<meta name=csrf content="{_e(csrf)}">'
        '<header><a class=brand href="/">nemod</a><nav><a href="/">Overview</a>'
        f'<a href="/jobs">Jobs</a></nav>{ACCOUNT}</header>'
        f"<main><h1>{_e(title)}</h1>{body}</main></body></html>\n"
    )


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], *, body_id: str = "",
           empty: str = "nothing") -> str:
    """A table whose cells are already HTML (callers escape)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    rendered = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not rendered:
        rendered = f'<tr class=empty><td colspan="{len(header)}">{_e(empty)}</td></tr>'
    tbody = f' id="{_e(body_id)}"' if body_id else ""
    return f"<div class=scroll><table><thead><tr>{head}</tr></thead><tbody{tbody}>{rendered}</tbody></table></div>"


def _form(action: str, label: str, csrf: str, fields: Mapping[str, str] | None = None,
          css: str = "") -> str:
    hidden = "".join(f'<input type=hidden name="{_e(k)}" value="{_e(v)}">' for k, v in (fields or {}).items())
    return (f'<form method=post action="{_e(action)}" class="inline {css}">'
            f'<input type=hidden name=csrf value="{_e(csrf)}">{hidden}'
            f"<button type=submit>{_e(label)}</button></form>")


def _day(seconds: float | None) -> str:
    return "" if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d")


def _job_link(job: JobLine) -> str:
    return f'<a href="/jobs/{quote(job.id)}">{_e(job.source)}</a>'


def _progress(job: JobLine) -> str:
    step = job.step or "starting"
    if job.progress is None:
        return f'<span class=step>{_e(step)}</span>'
    percent = max(0.0, min(100.0, job.progress * 100))
    return (f'<span class=step>{_e(step)}</span> <progress max=100 value="{percent:.0f}"></progress> '
            f'<span class=pct>{percent:.0f}%</span>')


def overview(data: Overview, csrf: str, message: str | None = None) -> str:
    """The first page: what is running, what waits, the folders and windows."""
    snap = data.snapshot
    parts = [_flash(message)]
    daemon = snap.daemon
    parts.append(f'<p class=daemon id=daemon>{_e(daemon.detail)}</p>')
    if not snap.store_ok:
        parts.append(f"<p class=bad>Store unreadable: {_e(snap.store_error or '')}</p>")
    parts.append('<ul class=counts id=counts>' + "".join(
        f'<li class="{_e(s)}"><b>{snap.counts.get(s, 0)}</b> {_e(s)}</li>' for s in STATES) + "</ul>")
    if snap.host_id:
        hosts = sorted({snap.host_id, *(j.host for j in snap.running if j.host)})
        parts.append(f"<p class=hosts id=hosts>This page: host {_e(snap.host_id)}"
                     + (f" (store {_e(snap.store_name)})" if snap.store_name else "")
                     + (f"; jobs running on {_e(', '.join(hosts))}" if snap.running else "") + "</p>")
    credits = daemon.credits or {}
    if credits.get("balance") is not None:
        parts.append(f"<p>Credits: {_e(credits['balance'])}</p>")
    parts.append("<h2>Running</h2>" + _table(
        ("file", "rule", "progress", "attempt", "host"),
        [(_job_link(j), _e(j.rule), _progress(j), _e(j.attempts), _e(j.host or "")) for j in snap.running],
        body_id="running"))
    parts.append("<h2>Queue</h2>" + _table(
        ("#", "file", "rule", "state", "starts", "why"),
        [(str(n), _job_link(j), _e(j.rule), _e(j.state),
          "now" if not j.not_before or j.not_before <= snap.taken_at else _e(when(j.not_before)),
          _e(j.reason or "")) for n, j in enumerate(snap.queue, 1)],
        body_id="queue", empty="empty"))
    rows = []
    for folder in snap.folders:
        paused = folder.folder in data.paused
        action = "resume" if paused else "pause"
        link = "/jobs?" + urlencode({"folder": folder.folder})
        rows.append((f'<a href="{_e(link)}">{_e(folder.folder)}</a>' + (" <em>paused</em>" if paused else ""),
                     *(f'<span data-folder="{_e(folder.folder)}" data-state="{s}">{folder.counts.get(s, 0)}</span>'
                       for s in STATES),
                     _form(f"/folders/{action}", action.capitalize(), csrf, {"folder": folder.folder})))
    parts.append("<h2>Folders</h2>" + _table(("folder", *STATES, ""), rows, body_id="folders"))
    parts.append("<h2>Processing windows</h2>" + _table(
        ("for", "window", "now", "next opens"),
        [(_e(w.owner), _e(w.text), "open" if w.open_now else "shut",
          _e(when(w.next_open)) if w.next_open else "-") for w in data.windows],
        empty="none: jobs start at any time"))
    parts.append("<h2>Recent failures</h2>" + _table(
        ("file", "rule", "when", "reason"),
        [(_job_link(j), _e(j.rule), _e(when(j.finished_at)), _e(_sentence(j.reason)))
         for j in snap.failures], body_id="failures", empty="none"))
    parts.append(
        '<h2>Explain a file name</h2><form method=post action="/explain" class=explain>'
        f'<input type=hidden name=csrf value="{_e(csrf)}">'
        '<input name=name placeholder="talk.mp4" required aria-label="file name">'
        "<button type=submit>Explain</button></form>")
    parts.append(f'<p class=foot>taken {_e(when(snap.taken_at))} · <a href="/status.json">json</a>'
                 ' · <a href="/metrics">metrics</a></p>')
    return page("Overview", "".join(parts), csrf=csrf, kind="overview")


def jobs_list(result: JobPage, query: JobFilter, folders: Sequence[str], rules: Sequence[str],
              csrf: str) -> str:
    """The searchable, filterable, paged jobs list."""
    def options(name: str, values: Sequence[str], chosen: str | None) -> str:
        items = [f'<option value="">any {name}</option>'] + [
            f'<option value="{_e(v)}"{" selected" if v == chosen else ""}>{_e(v)}</option>' for v in values]
        return f'<select name="{name}" aria-label="{name}">{"".join(items)}</select>'

    form = ('<form method=get action="/jobs" class=filters>'
            f'<input name=q value="{_e(query.search or "")}" placeholder="file name contains" aria-label=search>'
            + options("state", STATES, query.state) + options("folder", folders, query.folder)
            + options("rule", rules, query.rule)
            + f'<input type=date name=since value="{_e(_day(query.since))}" aria-label="found since">'
            + "<button type=submit>Filter</button></form>")
    table = _table(
        ("id", "file", "folder", "rule", "state", "updated"),
        [(_e(j.id), _job_link(j), _e(j.folder or ""), _e(j.rule),
          _e(j.state if j.state != "running" or not j.step else f"running: {j.step}"),
          _e(when(j.updated_at))) for j in result.jobs],
        body_id="jobs", empty="no jobs match")
    more = ""
    if result.next_before is not None:
        params = {k: v for k, v in (("q", query.search), ("state", query.state), ("folder", query.folder),
                                    ("rule", query.rule), ("since", _day(query.since))) if v}
        params["before"] = str(result.next_before)
        more = f'<p><a class=next href="/jobs?{_e(urlencode(params))}">Older jobs →</a></p>'
    return page("Jobs", form + table + more, csrf=csrf, kind="jobs")


def _caption_language(log: Mapping[str, Any] | None) -> str:
    """The language the job's captions are written in (its timeline's captions), else ``en``."""
    timeline = log_timeline(log)
    captions = timeline.captions if timeline is not None else None
    return captions.language if captions is not None else languages.ENGLISH


def job_page(detail: JobDetail, csrf: str, message: str | None = None) -> str:
    """One job: what it is, how far it got, why it failed, what it made."""
    job = detail.job
    state = job.state.value
    facts = [
        ("file", _e(detail.source)), ("folder", _e(job.source.root)), ("rule", _e(job.rule)),
        ("instruction", _e(detail.instruction or "-")), ("backend", _e(detail.backend or "-")),
        ("state", f'<span id=state class="state {_e(state)}">{_e(job.label)}</span>'),
        ("progress", f'<span id=progress>{_progress(_as_line(job)) if state == "running" else "-"}</span>'),
        ("attempts", _e(job.attempts)), ("host", _e(job.host or "-")), ("found", _e(when(job.created_at))),
        ("updated", _e(when(job.updated_at))), ("finished", _e(when(job.finished_at))),
    ]
    parts = [_flash(message), "<dl class=facts>" + "".join(
        f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"]
    advice = advise(job.error) if state in ("failed", "waiting", "queued") else None
    if advice is not None:
        parts.append(f'<div class="advice {_e(state)}" id=advice><p class=sentence>{_e(advice.sentence)}</p>'
                     f"<p class=action>{_e(advice.action)}</p>"
                     f"<details><summary>details</summary><pre>{_e(advice.detail)}</pre></details></div>")
    parts.append("<div class=actions>" + _actions(job.id, state, csrf) + "</div>")
    parts.append(_timings(detail.log))
    parts.append(_outputs(detail, csrf))
    return page(f"Job {job.id}", "".join(parts), csrf=csrf, kind="job",
                data={"job": str(job.id), "state": state})


def _as_line(job: Any) -> JobLine:
    return JobLine(id=str(job.id), source="", rule=job.rule, state=job.state.value, step=job.step,
                   progress=job.progress)


def _actions(job_id: int, state: str, csrf: str) -> str:
    buttons = []
    if state == "failed":
        buttons.append(_form(f"/jobs/{job_id}/retry", "Retry", csrf, css="retry"))
    if state in ("queued", "waiting", "running"):
        buttons.append(_form(f"/jobs/{job_id}/cancel", "Cancel", csrf, css="cancel"))
    if state != "running":
        buttons.append(_form(f"/jobs/{job_id}/forget", "Forget (run the file again)", csrf, css="forget"))
    return "".join(buttons)


def _timings(log: Mapping[str, Any] | None) -> str:
    if not log:
        return ""
    timeline = log_timeline(log)
    analysis = timeline.analysis_seconds if timeline is not None else {}
    steps: dict[str, float] = {}  # the engine reports analysis steps in the timeline and the log
    for source in (analysis, log.get("timings") or {}):
        for name, seconds in dict(source).items():
            if isinstance(seconds, int | float):
                steps[str(name)] = float(seconds)
    rows = [(name, f"{seconds:.2f} s") for name, seconds in steps.items()]
    if isinstance(log.get("seconds"), int | float):
        rows.append(("whole job", f"{float(log['seconds']):.2f} s"))
    summary = f"<p class=summary>{_e(log['timeline'])}</p>" if log.get("timeline") else ""
    return "<h2>Timings</h2>" + summary + _table(("step", "took"), [(_e(a), _e(b)) for a, b in rows])


def _outputs(detail: JobDetail, csrf: str) -> str:
    job_id = detail.job.id
    if not detail.outputs:
        return ""
    rows = []
    for out in detail.outputs:
        href = f"/jobs/{job_id}/files/{quote(out.suffix)}"
        link = f'<a href="{_e(href)}" download>{_e(out.path.name)}</a>' if out.size is not None else _e(out.path.name)
        length = f"{out.duration:.2f} s" if out.duration is not None else ""
        rows.append((link, _e(size_text(out.size)), _e(length)))
    parts = ["<h2>Outputs</h2>" + _table(("file", "size", "duration"), rows, body_id="outputs")]
    suffixes = {out.suffix: out for out in detail.outputs if out.size is not None}
    if ".timeline.svg" in suffixes:
        src = f"/jobs/{job_id}/files/{quote('.timeline.svg')}"
        parts.append(f'<h2>The edit</h2><a href="{_e(src)}"><img id=picture class=picture src="{_e(src)}" '
                     'alt="picture of the edit: kept and cut stretches over the loudness"></a>')
    elif log_timeline(detail.log) is not None:
        src = f"/jobs/{job_id}/picture.svg"
        parts.append(f'<h2>The edit</h2><a href="{_e(src)}"><img id=picture class=picture src="{_e(src)}" '
                     'alt="picture of the edit: kept and cut stretches"></a><p class=note>Drawn from the '
                     "log's draft, without the loudness (add <code>picture: svg</code> to the rule for it).</p>")
    if ".mp4" in suffixes:
        src = f"/jobs/{job_id}/files/.mp4"
        tracks = ""
        if ".vtt" in suffixes:
            language = _caption_language(detail.log)
            tracks = (f'<track kind=captions src="/jobs/{job_id}/files/.vtt" srclang="{_e(language)}" '
                      f'label="captions ({_e(language)})">')
        parts.append(f'<h2>Watch</h2><video id=player controls preload=metadata src="{_e(src)}">{tracks}</video>')
    if detail.log is not None:
        text = json.dumps(detail.log, indent=2, ensure_ascii=False)
        parts.append(f"<h2>Log</h2><details><summary>.log.json</summary><pre class=log>{_e(text)}</pre></details>")
    return "".join(parts)


def explained(name: str, lines: Sequence[str], csrf: str) -> str:
    """The answer to "explain this file name"."""
    body = f"<p>For a file called <code>{_e(name)}</code>:</p><ul class=explain-lines>" + "".join(
        f"<li>{_e(line)}</li>" for line in lines) + '</ul><p><a href="/">back</a></p>'
    return page("Explain", body, csrf=csrf, kind="explain")


def login(csrf: str, failed: bool = False) -> str:
    """The login form (password or token)."""
    note = "<p class=bad>That password is not right.</p>" if failed else ""
    body = (f'{note}<form method=post action="/login" class=login><input type=hidden name=csrf value="{_e(csrf)}">'
            '<label>Password or token <input type=password name=secret autocomplete=current-password required>'
            "</label><button type=submit>Log in</button></form>")
    return page("Log in", body, csrf=csrf, kind="login")


def _sentence(reason: str | None) -> str:
    advice = advise(reason)
    return advice.sentence if advice is not None else ""


def _flash(message: str | None) -> str:
    return f'<p class=flash id=flash role=status>{_e(message)}</p>' if message else ""


def line_json(job: JobLine) -> dict[str, Any]:
    """A job line for the live-update script."""
    return {"id": job.id, "file": job.source, "rule": job.rule, "state": job.state, "step": job.step,
            "progress": job.progress, "attempts": job.attempts, "reason": job.reason,
            "not_before": job.not_before, "host": job.host}


def overview_json(data: Overview) -> dict[str, Any]:
    """What the overview's script redraws every couple of seconds."""
    snap = data.snapshot
    return {
        "taken_at": snap.taken_at, "daemon": snap.daemon.detail,
        "counts": {s: snap.counts.get(s, 0) for s in STATES},
        "folders": [{"folder": f.folder, "counts": {s: f.counts.get(s, 0) for s in STATES}}
                    for f in snap.folders],
        "running": [line_json(j) for j in snap.running],
        "queue": [line_json(j) for j in snap.queue],
        "failures": [{**line_json(j), "reason": _sentence(j.reason), "finished": when(j.finished_at)}
                     for j in snap.failures],
    }


def job_json(detail: JobDetail) -> dict[str, Any]:
    """What a job page's script polls."""
    job = detail.job
    return {"id": job.id, "state": job.state.value, "label": job.label, "step": job.step,
            "progress": job.progress, "attempts": job.attempts, "error": job.error,
            "updated_at": job.updated_at, "finished_at": job.finished_at}
