// bsjobs dashboard. Job data is written with textContent only, never as
// markup: an argument "<script>…" is shown as that text and runs nothing.
"use strict";
(function () {
  const meta = (n) => document.querySelector('meta[name="' + n + '"]').content;
  const base = meta("bsjobs-base");
  const csrf = meta("bsjobs-csrf");
  const readOnly = meta("bsjobs-read-only") === "true";
  const $ = (id) => document.getElementById(id);
  const STATES = ["buried", "ready", "delayed", "reserved"];

  let servers = [];
  let tubes = [];
  let sel = null; // { tube, state, counts, after, jobs }

  // el("td", {class: "n"}, "text", child…): text is set as text, never parsed.
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) e.setAttribute(k, String(v));
    }
    for (const k of kids) {
      if (k === null || k === undefined) continue;
      e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return e;
  }

  function flash(text, bad) {
    const f = $("flash");
    f.textContent = text;
    f.className = bad ? "bad" : "";
    f.hidden = false;
    clearTimeout(flash.t);
    flash.t = setTimeout(() => { f.hidden = true; }, bad ? 8000 : 3000);
  }

  async function get(path) {
    const r = await fetch(base + path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    const body = await r.json().catch(() => ({ error: r.statusText }));
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  }

  async function act(payload, confirmText) {
    if (confirmText && !window.confirm(confirmText)) return;
    try {
      const r = await fetch(base + "/api/action", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-Bsjobs-Csrf": csrf },
        body: JSON.stringify(payload),
      });
      const body = await r.json().catch(() => ({ error: r.statusText }));
      if (!r.ok) throw new Error(body.error || r.statusText);
      flash(body.message);
    } catch (e) {
      flash(String(e.message || e), true);
    }
    await refresh(true);
  }

  function button(label, onClick, attrs) {
    const b = el("button", Object.assign({ type: "button" }, attrs || {}), label);
    b.addEventListener("click", (ev) => { ev.stopPropagation(); onClick(); });
    if (readOnly) b.disabled = true;
    return b;
  }

  function jobLabel(at) {
    return servers.length > 1 ? at.id + "@" + servers[at.server].addr : String(at.id);
  }

  function dur(s) {
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + (s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h" + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d" + Math.floor((s % 86400) / 3600) + "h";
  }

  function spark(series) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("viewBox", "0 0 120 24");
    if (series.length > 1) {
      const max = Math.max(1, ...series);
      const pts = series.map((v, i) =>
        ((i / (series.length - 1)) * 118 + 1).toFixed(1) + "," + (22 - (v / max) * 20).toFixed(1));
      const line = document.createElementNS(ns, "polyline");
      line.setAttribute("points", pts.join(" "));
      svg.append(line);
    }
    return svg;
  }

  function renderServers() {
    const box = el("div", { class: "servers" });
    for (const s of servers) {
      if (s.error) {
        box.append(el("div", { class: "server down" }, el("strong", {}, s.addr), "unreachable: " + s.error));
        continue;
      }
      const st = s.stats;
      box.append(el("div", { class: "server", "data-server": s.addr },
        el("strong", {}, s.addr),
        el("span", { class: "muted" }, "beanstalkd " + st.version + ", up " + dur(st.uptime) +
          (st.binlog ? ", binlog" : "") + (st.draining ? ", DRAINING" : "")),
        el("div", {}, "ready " + st.ready + " · reserved " + st.reserved + " · delayed " + st.delayed +
          " · buried " + st.buried + " · workers " + st.workers)));
    }
    $("servers").replaceChildren(box);
  }

  function renderTubes() {
    const body = $("tubes").tBodies[0];
    const rows = tubes.map((t) => {
      const actions = el("td", {});
      if (t.buried > 0) {
        actions.append(button("kick all", () => act({ action: "kick_all", tube: t.name }), { "data-action": "kick-all" }));
        actions.append(button("delete all buried", () => act({ action: "delete_all", tube: t.name },
          "Delete all " + t.buried + " buried jobs of " + t.name + "?"), { class: "danger", "data-action": "delete-all" }));
      }
      if (t.paused_for > 0) {
        actions.append(button("resume", () => act({ action: "resume", tube: t.name }), { "data-action": "resume" }));
      } else {
        actions.append(button("pause 5m", () => act({ action: "pause", tube: t.name, seconds: 300 }), { "data-action": "pause" }));
      }
      const tr = el("tr", { class: "tube" + (sel && sel.tube === t.name ? " sel" : ""), "data-tube": t.name },
        el("td", {}, t.name),
        el("td", { class: "n c-ready" }, t.ready),
        el("td", { class: "n c-delayed" }, t.delayed),
        el("td", { class: "n c-reserved" }, t.reserved),
        el("td", { class: "n c-buried" + (t.buried > 0 ? " buried-nz" : "") }, t.buried),
        el("td", { class: "n" }, t.total_jobs),
        el("td", { class: "n" }, t.put_per_min.toFixed(0)),
        el("td", { class: "n" }, t.done_per_min.toFixed(0)),
        el("td", {}, spark(t.series)),
        el("td", { class: "n" }, t.paused_for > 0 ? dur(t.paused_for) : "–"),
        actions);
      tr.addEventListener("click", () => select(t.name));
      return tr;
    });
    body.replaceChildren(...rows);
    $("no-tubes").hidden = tubes.length > 0;
  }

  function select(name, state) {
    const t = tubes.find((x) => x.name === name);
    if (!state) state = t && t.buried > 0 ? "buried" : t && t.ready > 0 ? "ready" : "buried";
    sel = { tube: name, state: state, counts: t ? String(t[state]) : "gone", loaded: Date.now(), after: null, jobs: [] };
    renderTubes();
    loadJobs(false);
  }

  async function loadJobs(more) {
    if (!sel) return;
    const s = sel;
    let q = "/api/jobs?tube=" + encodeURIComponent(s.tube) + "&state=" + s.state + "&limit=50";
    if (more && s.after) q += "&after_server=" + s.after.server + "&after_id=" + s.after.id;
    try {
      const page = await get(q);
      if (sel !== s) return;
      s.jobs = more ? s.jobs.concat(page.jobs) : page.jobs;
      s.after = page.next;
      s.matching = page.matching;
      renderJobs();
    } catch (e) {
      flash("jobs of " + s.tube + ": " + e.message, true);
    }
  }

  function renderJobs() {
    const s = sel;
    $("jobs-panel").hidden = false;
    $("jobs-tube").textContent = s.tube;
    const t = tubes.find((x) => x.name === s.tube) || {};
    $("states").replaceChildren(...STATES.map((st) => {
      const b = el("button", { type: "button", class: st === s.state ? "on" : "", "data-state": st }, st + " (" + (t[st] || 0) + ")");
      b.addEventListener("click", () => select(s.tube, st));
      return b;
    }));
    const rows = s.jobs.map((j) => {
      let args = "", err = "", attempt = "–";
      const b = j.body;
      if (b.kind === "envelope") {
        args = JSON.stringify(b.args, null, 1);
        err = b.error || "";
        attempt = b.attempt;
      } else if (b.kind === "chain_token") {
        args = "chain token of " + b.chain;
      } else {
        args = "raw (" + b.len + " bytes, " + b.reason + "): " + b.text;
      }
      const actions = el("td", {});
      if (j.state === "buried" || j.state === "delayed") {
        actions.append(button("kick", () => act({ action: "kick", job: { server: j.server, id: j.id } }), { "data-action": "kick" }));
      }
      if (j.state !== "reserved") {
        actions.append(button("delete", () => act({ action: "delete", job: { server: j.server, id: j.id } },
          "Delete job " + jobLabel(j) + "?"), { class: "danger", "data-action": "delete" }));
      }
      if (b.kind === "envelope" && b.chain) {
        actions.append(button("cancel chain", () => act({ action: "cancel", job: { server: j.server, id: j.id } },
          "Cancel chain " + b.chain + "?"), { class: "danger", "data-action": "cancel" }));
      }
      return el("tr", { class: "job", "data-job": j.id, "data-server": j.server },
        el("td", { class: "n" }, jobLabel(j)),
        el("td", { class: "st-" + j.state }, j.state),
        el("td", { class: "n" }, dur(j.age)),
        el("td", { class: "n" }, attempt),
        el("td", {}, el("pre", { class: "args" }, args)),
        el("td", { class: "err" }, err),
        actions);
    });
    $("jobs").tBodies[0].replaceChildren(...rows);
    $("jobs-note").textContent = s.jobs.length + " shown of " + s.matching + " " + s.state;
    $("more").hidden = !s.after;
  }

  function renderChains(list) {
    const rows = list.chains.map((c) => {
      const j = c.job;
      const env = j && j.body.kind === "envelope" ? j.body : null;
      const actions = el("td", {});
      if (j) {
        actions.append(button("cancel", () => act({ action: "cancel_chain", chain: c.chain },
          "Cancel chain " + c.chain + "?"), { class: "danger", "data-action": "cancel-chain" }));
      }
      return el("tr", { "data-chain": c.chain },
        el("td", {}, c.chain),
        el("td", {}, j ? j.tube : "?"),
        el("td", { class: "n" }, j ? jobLabel(j) : "not found"),
        el("td", { class: j ? "st-" + j.state : "" }, j ? j.state : "?"),
        el("td", {}, j && j.state === "delayed" ? "in " + dur(j.time_left) : j && j.state === "reserved" ? "running" : "–"),
        el("td", { class: "n" }, env ? env.run : "?"),
        el("td", { class: "n" }, c.token_gen === null || c.token_gen === undefined ? "–" : c.token_gen),
        actions);
    });
    $("chains").tBodies[0].replaceChildren(...rows);
    $("no-chains").hidden = rows.length > 0;
  }

  let lastChains = 0;
  async function refresh(force) {
    try {
      const o = await get("/api/overview");
      servers = o.servers;
      tubes = o.tubes;
      renderServers();
      renderTubes();
      $("status").textContent = "updated " + new Date().toLocaleTimeString() +
        (o.history_secs ? " · rates over " + dur(Math.min(60, o.history_secs)) : "");
      if (sel) {
        const t = tubes.find((x) => x.name === sel.tube);
        // A listing walks job ids on the server: redo it when the count of
        // the state shown changes, at most every 10 s unless asked.
        const counts = t ? String(t[sel.state]) : "gone";
        if (force || (counts !== sel.counts && Date.now() - (sel.loaded || 0) > 10000)) {
          sel.counts = counts;
          sel.loaded = Date.now();
          await loadJobs(false);
        }
      }
      if (force || Date.now() - lastChains > 20000) {
        lastChains = Date.now();
        renderChains(await get("/api/chains"));
      }
      document.body.dataset.loaded = "true";
    } catch (e) {
      $("status").textContent = "error: " + e.message;
    }
  }

  $("more").addEventListener("click", () => loadJobs(true));
  if (readOnly) $("mode").textContent = "read-only";
  refresh(false).then(() => {
    // #tube=NAME opens that tube's jobs (links from elsewhere).
    const m = /^#tube=(.+)$/.exec(location.hash);
    if (m) select(decodeURIComponent(m[1]));
  });
  setInterval(() => refresh(false), 3000);
})();
