// raft-trio monitor page: listens to the monitor's /events stream and keeps
// one card per node. Plain JavaScript, no build step, no dependencies.
//
// Contract for scripts and browser tests: every card carries
// data-node-id="<id>" and data-role="<role>" (leader, follower, candidate,
// learner, unreachable), updated as soon as an event arrives.
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
    card.querySelector(".node-id").textContent = doc.id;
    card.querySelector(".role-badge").textContent = doc.role;
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
    let reachable = 0;
    for (const doc of nodes.values()) {
      if (doc.role !== "unreachable") reachable += 1;
      if (doc.role === "candidate") candidates += 1;
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
      banner.dataset.state = candidates ? "election" : "none";
      $("leader-id").textContent = candidates ? "election…" : "none";
      $("leader-detail").textContent = nodes.size === 0
        ? "waiting for the nodes…"
        : candidates
          ? `${candidates} candidate${candidates > 1 ? "s" : ""}, no leader yet`
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

  // -- the stream ------------------------------------------------------------

  function setConnection(state, text) {
    const badge = $("connection");
    badge.dataset.state = state;
    badge.textContent = text;
    document.body.classList.toggle("stale", state === "lost");
  }

  function parse(event) {
    try {
      return JSON.parse(event.data);
    } catch (error) {
      console.warn("monitor: bad event", event.type, error);
      return null;
    }
  }

  const source = new EventSource("events");
  source.addEventListener("open", () => setConnection("live", "live"));
  source.addEventListener("error", () => setConnection("lost", "monitor unreachable, retrying…"));
  source.addEventListener("snapshot", (event) => {
    const doc = parse(event);
    if (!doc) return;
    setConnection("live", "live");
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
    updateSummary();
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
    const init = { method, headers: {} };
    if (method === "PUT") {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify({ value: $("kv-value").value });
    }
    buttons.forEach((b) => (b.disabled = true));
    result.dataset.state = "idle";
    result.textContent = method === "PUT" ? "writing…" : "reading…";
    try {
      const path = key.split("/").map(encodeURIComponent).join("/");
      const response = await fetch(`kv/${path}`, init);
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
