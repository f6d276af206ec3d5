// raft-trio monitor page: listens to the monitor's /events stream and keeps
// one card per node. Plain JavaScript, no build step, no dependencies.
//
// Contract for scripts and browser tests: every card carries
// data-node-id="<id>" and data-role="<role>" (leader, follower, candidate,
// learner, unreachable), updated as soon as an event arrives; besides,
// data-voter ("true"/"false") and data-pre-vote ("true" while a candidate
// only asks for pre-votes, shown as "pre-vote"). The chart's lines and
// legend entries carry data-node (not data-node-id, which marks cards
// alone) and the legend's data-value the latest commit rate or lag.
"use strict";

(function () {
  const nodes = new Map(); // id -> latest node document
  const cards = new Map(); // id -> <article>
  const seenEntries = new Set(); // timeline sequence numbers shown
  const TIMELINE_SHOWN = 200;

  const $ = (id) => document.getElementById(id);
  const nodesBox = $("nodes");
  const timelineBox = $("timeline");
  const template = $("card-template");

  const byId = (a, b) => a.localeCompare(b, undefined, { numeric: true });
  const show = (value) => (value === null || value === undefined ? "–" : String(value));

  // -- cards -----------------------------------------------------------------

  function upsertNode(doc) {
    doc.receivedAt = performance.now();
    nodes.set(doc.id, doc);
    let card = cards.get(doc.id);
    if (!card) {
      card = template.content.firstElementChild.cloneNode(true);
      card.dataset.nodeId = doc.id;
      cards.set(doc.id, card);
      placeCard(doc.id, card);
    }
    card.dataset.role = doc.role;
    card.dataset.preVote = String(Boolean(doc.pre_vote));
    card.dataset.voter = String(doc.member !== false && doc.voter !== false);
    card.dataset.member = String(doc.member !== false);
    card.querySelector(".node-id").textContent = doc.id;
    card.querySelector(".role-badge").textContent = shownRole(doc);
    card.querySelector(".membership").textContent =
      doc.member === false ? "not a member" : doc.voter === false ? "learner" : doc.voter ? "voter" : "";
    setFact(card, ".term", doc.term);
    setFact(card, ".leader", doc.leader_id);
    setFact(card, ".commit", doc.commit_index);
    setFact(card, ".applied", doc.applied_index);
    card.querySelector(".url").textContent = doc.url;
    const notes = [];
    if (doc.role === "unreachable" && doc.reason) notes.push(doc.reason);
    if (doc.member === false) notes.push("not in the leader's membership");
    else if (doc.voter === false && doc.role !== "learner") notes.push("learner: catching up");
    const note = card.querySelector(".note");
    note.textContent = notes.join(" · ");
    note.hidden = notes.length === 0;
    note.classList.toggle("warning", doc.role === "unreachable" || doc.member === false);
    updateContact(card, doc);
  }

  function shownRole(doc) {
    return doc.pre_vote && doc.role === "candidate" ? "pre-vote" : doc.role;
  }

  function placeCard(id, card) {
    const after = [...cards.keys()].filter((other) => other !== id && byId(other, id) > 0).sort(byId)[0];
    nodesBox.insertBefore(card, after ? cards.get(after) : null);
  }

  function setFact(card, selector, value) {
    const cell = card.querySelector(selector);
    const text = show(value);
    if (cell.textContent !== text) {
      const wasSet = cell.textContent !== "–";
      cell.textContent = text;
      if (wasSet) {
        cell.classList.remove("changed");
        void cell.offsetWidth; // restart the flash animation
        cell.classList.add("changed");
      }
    }
  }

  function removeNode(id) {
    nodes.delete(id);
    const card = cards.get(id);
    if (card) card.remove();
    cards.delete(id);
  }

  function ago(ms) {
    if (ms < 1000) return "< 1 s ago";
    if (ms < 60000) return `${Math.floor(ms / 1000)} s ago`;
    if (ms < 3600000) return `${Math.floor(ms / 60000)} min ago`;
    return `${Math.floor(ms / 3600000)} h ago`;
  }

  function updateContact(card, doc) {
    const span = card.querySelector(".contact");
    if (doc.last_contact_ms_ago === null || doc.last_contact_ms_ago === undefined) {
      span.textContent = "never contacted";
      return;
    }
    const age = doc.last_contact_ms_ago + (performance.now() - doc.receivedAt);
    span.textContent = `last contact ${ago(age)}`;
  }

  // -- the leader ------------------------------------------------------------

  function updateSummary() {
    let leader = null;
    const claims = [];
    let candidates = 0;
    let preVotes = 0;
    let reachable = 0;
    for (const doc of nodes.values()) {
      if (doc.role !== "unreachable") reachable += 1;
      if (doc.role === "candidate" && doc.pre_vote) preVotes += 1;
      else if (doc.role === "candidate") candidates += 1;
      if (doc.role === "leader") {
        claims.push(doc);
        if (!leader || (doc.term || 0) > (leader.term || 0)) leader = doc;
      }
    }
    const banner = $("leader-banner");
    if (leader) {
      banner.dataset.state = "leader";
      $("leader-id").textContent = `★ ${leader.id}`;
      const others = claims.filter((d) => d !== leader).map((d) => `${d.id} (term ${d.term}, stale)`);
      let detail = `term ${show(leader.term)} · commit ${show(leader.commit_index)} · ${leader.url}`;
      if (others.length) detail += ` · also claims: ${others.join(", ")}`;
      $("leader-detail").textContent = detail;
    } else {
      banner.dataset.state = candidates || preVotes ? "election" : "none";
      $("leader-id").textContent = candidates ? "election…" : preVotes ? "pre-vote…" : "none";
      $("leader-detail").textContent = nodes.size === 0
        ? "waiting for the nodes…"
        : candidates
          ? `${candidates} candidate${candidates > 1 ? "s" : ""}, no leader yet`
          : preVotes
            ? `${preVotes} node${preVotes > 1 ? "s" : ""} asking for pre-votes (no term started), no leader known`
            : reachable ? "no leader known" : "no node reachable";
    }
    $("node-count").textContent = `(${reachable} of ${nodes.size} reachable)`;
  }

  // -- the timeline ----------------------------------------------------------

  function describe(entry) {
    const term = entry.term === null || entry.term === undefined ? "" : ` (term ${entry.term})`;
    if (entry.kind === "leader") return `${entry.new} leads term ${entry.term} (reported by ${entry.node})`;
    if (entry.kind === "term") return `term ${entry.term} begins (first seen at ${entry.node})`;
    if (entry.old === null || entry.old === undefined) return `${entry.node} seen as ${entry.new}${term}`;
    return `${entry.node}: ${entry.old} → ${entry.new}${term}`;
  }

  function clock(ms) {
    const d = new Date(ms);
    const pad = (n, w = 2) => String(n).padStart(w, "0");
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }

  function addEntry(entry) {
    if (seenEntries.has(entry.seq)) return;
    seenEntries.add(entry.seq);
    const item = document.createElement("li");
    item.dataset.kind = entry.kind;
    item.dataset.seq = entry.seq;
    if (entry.new) item.dataset.new = entry.new;
    const time = document.createElement("time");
    time.dateTime = new Date(entry.at_ms).toISOString();
    time.textContent = clock(entry.at_ms);
    const what = document.createElement("span");
    what.className = "what";
    what.textContent = describe(entry);
    item.append(time, what);
    // Newest first; entries may arrive out of order after a reconnect.
    let before = timelineBox.firstElementChild;
    while (before && before.dataset.seq && Number(before.dataset.seq) > entry.seq) before = before.nextElementSibling;
    timelineBox.insertBefore(item, before);
    while (timelineBox.children.length > TIMELINE_SHOWN) {
      const last = timelineBox.lastElementChild;
      seenEntries.delete(Number(last.dataset.seq));
      last.remove();
    }
  }

  // -- the chart -------------------------------------------------------------

  // Two small line charts drawn from the monitor's samples (one every
  // REFRESH_RATE_MILLIS): commits per second of each node, and how many
  // entries each follower or learner still has to apply of what the
  // leader has committed. Learners are dashed; a gap is an unreachable node.
  const chart = (function () {
    const SHOWN = 120;
    const PALETTE = ["#2563eb", "#16a34a", "#db2777", "#ea580c", "#7c3aed", "#0891b2", "#65a30d", "#b91c1c", "#475569"];
    const WIDTH = 600;
    const HEIGHT = 140;
    let samples = [];
    const colours = new Map();

    function colour(id) {
      if (!colours.has(id)) colours.set(id, PALETTE[colours.size % PALETTE.length]);
      return colours.get(id);
    }

    function draw(name, field, unit) {
      const figure = document.querySelector(`[data-chart=${name}]`);
      const svg = figure.querySelector("svg");
      const legend = figure.querySelector(".legend");
      const ids = [...new Set(samples.flatMap((s) => Object.keys(s.nodes)))].sort(byId);
      let top = 1;
      for (const s of samples) for (const id of ids) top = Math.max(top, (s.nodes[id] || {})[field] || 0);
      top = niceCeiling(top);
      const x = (i) => (samples.length < 2 ? WIDTH : (i * WIDTH) / (SHOWN - 1) + (SHOWN - samples.length) * WIDTH / (SHOWN - 1));
      const y = (v) => HEIGHT - 4 - (v / top) * (HEIGHT - 18);
      // Built as elements, never as markup: an id is whatever a node says.
      const scale = svgElement("text", { class: "scale", x: "4", y: "12" });
      scale.textContent = `${top}${unit}`;
      const parts = [scale];
      const items = [];
      for (const id of ids) {
        let runs = [];
        let run = [];
        samples.forEach((s, i) => {
          const value = (s.nodes[id] || {})[field];
          if (value === null || value === undefined) {
            if (run.length) runs.push(run);
            run = [];
          } else run.push(`${x(i).toFixed(1)},${y(value).toFixed(1)}`);
        });
        if (run.length) runs.push(run);
        const last = samples.length ? samples[samples.length - 1].nodes[id] : undefined;
        const learner = last && last.voter === false;
        for (const points of runs) {
          const line = svgElement("polyline", { class: learner ? "learner" : "", stroke: colour(id), points: points.join(" ") });
          line.dataset.node = id;
          parts.push(line);
        }
        const value = last ? last[field] : null;
        if (value === null || value === undefined) continue;
        const item = document.createElement("li");
        item.dataset.node = id;
        item.dataset.value = String(value);
        if (learner) item.className = "learner";
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = colour(id);
        swatch.style.borderColor = colour(id);
        const label = document.createElement("span");
        label.textContent = `${id}${learner ? " (learner)" : ""} ${value}${unit}`;
        item.append(swatch, label);
        items.push(item);
      }
      svg.replaceChildren(...parts);
      legend.replaceChildren(...items);
      const latest = samples[samples.length - 1];
      figure.dataset.leader = latest && latest.leader ? latest.leader : "";
    }

    function svgElement(name, attributes) {
      const element = document.createElementNS("http://www.w3.org/2000/svg", name);
      for (const [attribute, value] of Object.entries(attributes)) element.setAttribute(attribute, value);
      return element;
    }

    function niceCeiling(v) {
      const power = 10 ** Math.floor(Math.log10(v));
      for (const step of [1, 2, 5, 10]) if (v <= step * power) return step * power;
      return 10 * power;
    }

    function redraw() {
      draw("rate", "commit_rate", "/s");
      draw("lag", "lag", "");
    }

    return {
      reset(history, refreshMs) {
        samples = history.slice(-SHOWN);
        if (refreshMs) $("chart-period").textContent = `(a sample every ${refreshMs} ms, the last ${Math.round((SHOWN * refreshMs) / 1000)} s)`;
        redraw();
      },
      add(sample) {
        samples.push(sample);
        if (samples.length > SHOWN) samples.shift();
        redraw();
      },
    };
  })();

  // -- the stream ------------------------------------------------------------

  function setConnection(state, text) {
    const badge = $("connection");
    badge.dataset.state = state;
    badge.textContent = text;
    document.body.classList.toggle("stale", state === "lost");
  }

  function parse(event) {
    heardAt = performance.now();
    try {
      return JSON.parse(event.data);
    } catch (error) {
      console.warn("monitor: bad event", event.type, error);
      return null;
    }
  }

  // EventSource reconnects by itself after a dropped connection, but gives
  // up for good on an answer that is not a stream (a proxy's 502 while the
  // monitor restarts): then the page opens a new one itself.
  const REOPEN_MS = 2000;
  // The monitor sends a chart sample every refresh_ms. A stream that stays
  // open but silent for several of them is a monitor that hangs (or a
  // proxy that lost it): EventSource would wait on it for ever, and the
  // page show what it last got as live.
  const SILENT_PERIODS = 6;
  const SILENT_MIN_MS = 3000;
  let refreshMs = 500; // until a snapshot says
  let heardAt = performance.now(); // the last event or opening

  function connect() {
    const source = new EventSource("events");
    const watchdog = setInterval(() => {
      const silent = performance.now() - heardAt;
      if (source.readyState !== EventSource.OPEN || silent < Math.max(SILENT_MIN_MS, SILENT_PERIODS * refreshMs)) return;
      clearInterval(watchdog);
      source.close();
      setConnection("lost", `monitor silent for ${Math.round(silent / 1000)} s, reconnecting…`);
      connect();
    }, 500);
    source.addEventListener("open", () => {
      heardAt = performance.now();
      setConnection("live", "live");
    });
    source.addEventListener("error", () => {
      setConnection("lost", "monitor unreachable, retrying…");
      if (source.readyState === EventSource.CLOSED) {
        clearInterval(watchdog);
        setTimeout(connect, REOPEN_MS);
      }
    });
    source.addEventListener("snapshot", (event) => {
      const doc = parse(event);
      if (!doc) return;
      setConnection("live", "live");
      if (doc.refresh_ms) refreshMs = doc.refresh_ms;
      if (doc.service) {
        $("service").textContent = doc.service;
        $("service").hidden = false;
      }
      const ids = new Set(doc.nodes.map((n) => n.id));
      for (const id of [...cards.keys()]) if (!ids.has(id)) removeNode(id);
      for (const node of doc.nodes) upsertNode(node);
      timelineBox.replaceChildren();
      seenEntries.clear();
      for (const entry of doc.timeline) addEntry(entry);
      chart.reset(doc.samples || [], doc.refresh_ms);
      updateSummary();
    });
    source.addEventListener("sample", (event) => {
      const doc = parse(event);
      if (doc) chart.add(doc);
    });
    source.addEventListener("node", (event) => {
      const doc = parse(event);
      if (!doc) return;
      upsertNode(doc);
      updateSummary();
    });
    source.addEventListener("removed", (event) => {
      const doc = parse(event);
      if (!doc) return;
      removeNode(doc.id);
      updateSummary();
    });
    source.addEventListener("timeline", (event) => {
      const doc = parse(event);
      if (doc) addEntry(doc);
    });
  }

  connect();

  setInterval(() => {
    for (const [id, card] of cards) updateContact(card, nodes.get(id));
  }, 250);

  // -- the form --------------------------------------------------------------

  const result = $("kv-result");
  const buttons = [$("kv-put"), $("kv-get")];

  async function send(method) {
    const key = $("kv-key").value;
    if (!key) {
      result.dataset.state = "error";
      result.textContent = "a key is needed";
      return;
    }
    if (key === "." || key === "..") {
      // A browser resolves a "." or ".." path segment (even "%2E") before
      // the request leaves: it would name another resource.
      result.dataset.state = "error";
      result.textContent = `the page cannot send the key "${key}" (a browser reads it as a path step): use raft-trio kv`;
      return;
    }
    const init = { method, headers: {} };
    if (method === "PUT") {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify({ value: $("kv-value").value });
    }
    buttons.forEach((b) => (b.disabled = true));
    result.dataset.state = "idle";
    result.textContent = method === "PUT" ? "writing…" : "reading…";
    try {
      // The key as one path segment ("/" escaped too): sent segment by
      // segment, "a/../b" was resolved by the browser to "b".
      const response = await fetch(`kv/${encodeURIComponent(key)}`, init);
      const via = response.headers.get("X-Raft-Node");
      let body;
      try {
        body = await response.json();
      } catch (error) {
        body = { error: `HTTP ${response.status}` };
      }
      const by = via ? ` · answered by ${via}` : "";
      if (response.ok) {
        result.dataset.state = "ok";
        const verb = method === "PUT" ? "wrote" : "read";
        result.textContent = `${verb} ${body.key} = ${JSON.stringify(body.value)} · index ${body.index}${by}`;
      } else {
        result.dataset.state = "error";
        result.textContent = `${response.status}: ${body.error || JSON.stringify(body)}${by}`;
      }
    } catch (error) {
      result.dataset.state = "error";
      result.textContent = `the monitor did not answer: ${error}`;
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  $("kv-form").addEventListener("submit", (event) => {
    event.preventDefault();
    send("PUT");
  });
  $("kv-get").addEventListener("click", () => send("GET"));
})();
