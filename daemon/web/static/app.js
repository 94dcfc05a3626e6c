// kadlan's local page: a client of the daemon's control API (the CLI's),
// reached at /api/v1/... with the token as a bearer header. No framework,
// no build step, nothing loaded from elsewhere. Data from the daemon goes
// into the page as text only (textContent), never as HTML.
"use strict";

const POLL_MS = 2000;
const HISTORY = 90; // samples per traffic chart (3 minutes)

let token = sessionStorage.getItem("kadlan-token") || "";
const cards = new Map(); // network ID -> card state
let pollTimer = 0;

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}

function setText(e, s) { if (e.textContent !== s) e.textContent = s; }

class Unauthorized extends Error {}

async function call(method, path, body) {
  const opts = { method, headers: { "Authorization": "Bearer " + token }, cache: "no-store" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch("/api" + path, opts);
  if (r.status === 401) throw new Unauthorized("wrong or missing token");
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}

function showError(err) { setText($("error"), err ? String(err.message || err) : ""); }

function shortAddr(a) { return a && a.length > 16 ? a.slice(0, 8) + "…" + a.slice(-6) : (a || ""); }

function fmtRate(bps) {
  if (bps >= 1e9) return (bps / 1e9).toFixed(1) + " GB/s";
  if (bps >= 1e6) return (bps / 1e6).toFixed(1) + " MB/s";
  if (bps >= 1e3) return (bps / 1e3).toFixed(1) + " kB/s";
  return Math.round(bps) + " B/s";
}

function fmtDuration(s) {
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  if (d) return d + "d " + h + "h";
  if (h) return h + "h " + m + "m";
  return m + "m " + (s % 60) + "s";
}

// ---- sign-in ----

function signOut(why) {
  token = "";
  sessionStorage.removeItem("kadlan-token");
  $("app").hidden = true;
  $("login").hidden = false;
  setText($("login-error"), why || "");
  setText($("conn"), "signed out");
}

async function signIn(t) {
  token = t.trim();
  try {
    await call("GET", "/v1/status");
  } catch (err) {
    signOut(err instanceof Unauthorized ? "That token is not this node's." : String(err.message || err));
    return false;
  }
  sessionStorage.setItem("kadlan-token", token);
  $("login").hidden = true;
  $("app").hidden = false;
  return true;
}

// ---- this node and peers ----

function renderNode(st) {
  const dl = $("node-info");
  dl.replaceChildren();
  const rows = [
    ["address", st.address], ["version", st.version], ["bootstrap", st.bootstrap],
    ["reachability", st.reachability], ["DHT", `${st.dht_mode}, ${st.routing_table} peers in routing table (LAN ${st.routing_table_lan})`],
    ["connected", String(st.connected)], ["relay", st.relay], ["uptime", fmtDuration(st.uptime_s || 0)],
    ["addresses", (st.addrs || []).join("\n") || "-"],
  ];
  for (const [k, v] of rows) dl.append(el("dt", {}, k), el("dd", { class: k === "address" || k === "addresses" ? "mono" : "", id: "node-" + k.replace(/\W/g, "") }, v || "-"));
}

function renderPeers(ps) {
  const body = $("peer-rows");
  body.replaceChildren();
  for (const p of ps) {
    const path = p.path + (p.via ? " via " + shortAddr(p.via) : "");
    const tr = el("tr", { "data-address": p.address },
      el("td", { class: "mono", title: (p.addrs || []).join("\n") }, p.address),
      el("td", { class: "path" }, path),
      el("td", {}, [p.transport, p.scope].filter(Boolean).join(", ") || "-"),
      el("td", { class: "rtt" }, p.rtt_ms ? p.rtt_ms.toFixed(2) + " ms" : "-"),
      el("td", {}, p.in_routing_table ? "yes" : ""));
    body.append(tr);
  }
  if (!ps.length) body.append(el("tr", {}, el("td", { colspan: "5", class: "muted" }, "no peers connected")));
}

// ---- networks ----

async function act(button, f) {
  button.disabled = true;
  try {
    await f();
    showError(null);
    schedule(0);
  } catch (err) {
    if (err instanceof Unauthorized) signOut("The token is no longer valid.");
    else showError(err);
  } finally {
    button.disabled = false;
  }
}

function newCard(n) {
  const c = { id: n.network, history: [] };
  c.title = el("h3");
  c.meta = el("dl", { class: "meta" });
  c.canvas = el("canvas", { width: "900", height: "120" });
  c.legend = el("div", { class: "legend" });
  c.inviteBox = el("div", { class: "invite", hidden: "" });
  c.inviteButton = el("button", { class: "invite-button", type: "button" }, "Invite");
  c.inviteButton.addEventListener("click", () => act(c.inviteButton, () => invite(c)));
  c.rows = el("tbody");
  c.root = el("div", { class: "network", "data-network": n.network },
    c.title, c.meta,
    el("div", { class: "row" }, c.inviteButton),
    c.inviteBox,
    c.canvas, c.legend,
    el("table", {}, el("thead", {}, el("tr", {}, ...["address", "name", "status", "IPv4", "link", "path", ""].map((h) => el("th", {}, h)))), c.rows));
  return c;
}

async function invite(c) {
  const inv = await call("POST", "/v1/networks/invite", { network: c.id, expires_s: 86400, uses: 1 });
  const box = c.inviteBox;
  box.replaceChildren(
    el("div", {}, inv.private ? `One use, until ${inv.expires}. On the new node: ` : "Public network. On the new node: ",
      el("code", {}, "kadlan join TOKEN")),
    el("textarea", { class: "invite-token", rows: "4", readonly: "" }, inv.token));
  box.hidden = false;
  const r = await fetch("/qr", { method: "POST", headers: { "Authorization": "Bearer " + token }, body: inv.token });
  if (r.ok) {
    const img = el("img", { class: "invite-qr", alt: "QR code of the invite" });
    img.src = URL.createObjectURL(await r.blob());
    box.append(img);
  }
}

function memberRow(c, n, m) {
  const tr = el("tr", { "data-address": m.address });
  tr.cells_ = {
    addr: el("td", { class: "mono", title: m.address }),
    name: el("td", { class: "name" }),
    status: el("td", { class: "status" }),
    ipv4: el("td", { class: "ipv4" }),
    link: el("td", { class: "link" }),
    path: el("td", { class: "path" }),
    act: el("td", { class: "actions" }),
  };
  tr.authorize = el("button", { class: "authorize", type: "button", "data-address": m.address }, "Authorize");
  tr.authorize.addEventListener("click", () => act(tr.authorize, () => call("POST", "/v1/networks/authorize", { network: c.id, address: m.address })));
  tr.revoke = el("button", { class: "revoke", type: "button", "data-address": m.address }, "Revoke");
  tr.revoke.addEventListener("click", () => {
    if (confirm("Revoke " + m.address + "?")) act(tr.revoke, () => call("POST", "/v1/networks/revoke", { network: c.id, address: m.address }));
  });
  tr.cells_.act.append(tr.authorize, tr.revoke);
  tr.append(...Object.values(tr.cells_));
  return tr;
}

function updateCard(c, n, self, now) {
  setText(c.title, (n.name || "(no name)") + (n.private ? " · private" : " · public") + (n.is_owner ? " · owner" : ""));
  c.meta.replaceChildren();
  const meta = [["network", n.network], ["status", n.status + (n.error ? ": " + n.error : "") + (n.invite ? " (invite " + n.invite + ")" : "")],
    ["interface", n.interface || "-"], ["addresses", [...(n.ipv4 || []), ...(n.ipv6 || [])].join("  ") || "-"],
    ["links", String(n.links)]];
  if (n.dns_zone) meta.push(["names", (n.member_name || "?") + "." + n.dns_zone]);
  for (const [k, v] of meta) {
    const dd = el("dd", { class: k === "status" ? "status net-status" : (k === "network" ? "mono" : "") }, v);
    if (k === "status") dd.setAttribute("data-status", n.status);
    c.meta.append(el("dt", {}, k), dd);
  }
  c.inviteButton.hidden = n.private && !n.is_owner;

  // Members: rows are kept and updated in place, so that a button does not
  // move or vanish under the pointer between two polls.
  const seen = new Set();
  for (const m of n.members || []) {
    seen.add(m.address);
    let tr = c.rows.querySelector(`tr[data-address="${CSS.escape(m.address)}"]`);
    if (!tr || !tr.cells_) { tr = memberRow(c, n, m); c.rows.append(tr); }
    const x = tr.cells_;
    setText(x.addr, m.address === self ? m.address + " (this node)" : m.address);
    setText(x.name, m.name || "");
    setText(x.status, m.status);
    x.status.setAttribute("data-status", m.status);
    setText(x.ipv4, m.ipv4 || "");
    setText(x.link, m.link ? "up" : "");
    setText(x.path, m.path ? m.path + (m.via ? " via " + shortAddr(m.via) : "") + (m.transport ? " (" + m.transport + ")" : "") : "");
    const owner = n.is_owner && m.address !== self;
    tr.authorize.hidden = !(owner && (m.status === "pending" || m.status === "invited" || m.status === "expired"));
    tr.revoke.hidden = !(owner && m.status !== "revoked" && m.status !== "pending");
  }
  for (const tr of [...c.rows.children]) if (!seen.has(tr.getAttribute("data-address"))) tr.remove();

  const t = n.traffic;
  if (t) {
    c.history.push({ t: now, inB: t.in_bytes, outB: t.out_bytes });
    if (c.history.length > HISTORY + 1) c.history.shift();
  }
  drawChart(c);
}

function drawChart(c) {
  const cv = c.canvas, dpr = window.devicePixelRatio || 1;
  const w = cv.clientWidth || 900, h = cv.clientHeight || 120;
  if (cv.width !== Math.round(w * dpr)) { cv.width = Math.round(w * dpr); cv.height = Math.round(h * dpr); }
  const g = cv.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const rates = [];
  for (let i = 1; i < c.history.length; i++) {
    const a = c.history[i - 1], b = c.history[i], dt = (b.t - a.t) / 1000;
    if (dt > 0) rates.push({ inR: Math.max(0, b.inB - a.inB) / dt, outR: Math.max(0, b.outB - a.outB) / dt });
  }
  let max = 1024;
  for (const r of rates) max = Math.max(max, r.inR, r.outR);
  const pad = 4, step = (w - 2 * pad) / HISTORY;
  g.strokeStyle = "#e5e7eb";
  g.beginPath(); g.moveTo(0, h / 2); g.lineTo(w, h / 2); g.stroke();
  for (const [key, color] of [["inR", "#2563eb"], ["outR", "#ea580c"]]) {
    g.strokeStyle = color;
    g.lineWidth = 1.5;
    g.beginPath();
    rates.forEach((r, i) => {
      const x = w - pad - (rates.length - 1 - i) * step, y = h - pad - (r[key] / max) * (h - 2 * pad);
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
  }
  g.fillStyle = "#6b7280";
  g.font = "11px system-ui, sans-serif";
  g.fillText(fmtRate(max), pad, 12);
  const last = rates[rates.length - 1] || { inR: 0, outR: 0 };
  c.legend.replaceChildren(el("span", { class: "in" }, "in " + fmtRate(last.inR)), el("span", { class: "out" }, "out " + fmtRate(last.outR)),
    el("span", { class: "muted" }, "member links, last " + Math.round(HISTORY * POLL_MS / 60000) + " min"));
}

function renderNetworks(nets, self) {
  const list = $("net-list"), now = Date.now(), seen = new Set();
  for (const n of nets) {
    seen.add(n.network);
    let c = cards.get(n.network);
    if (!c) { c = newCard(n); cards.set(n.network, c); list.append(c.root); }
    updateCard(c, n, self, now);
  }
  for (const [id, c] of cards) if (!seen.has(id)) { c.root.remove(); cards.delete(id); }
  if (!nets.length && !list.querySelector(".muted")) list.append(el("p", { class: "muted" }, "No network joined yet: create one, or kadlan join NETWORK|TOKEN."));
  if (nets.length) for (const p of list.querySelectorAll("p.muted")) p.remove();
}

// ---- polling ----

function schedule(ms) {
  clearTimeout(pollTimer);
  pollTimer = setTimeout(poll, ms);
}

async function poll() {
  if (!token) return;
  try {
    const [st, nets, peers] = await Promise.all([call("GET", "/v1/status"), call("GET", "/v1/networks"), call("GET", "/v1/peers")]);
    renderNode(st);
    renderNetworks(nets, st.address);
    renderPeers(peers);
    setText($("conn"), "updated " + new Date().toLocaleTimeString());
    document.body.setAttribute("data-loaded", "1");
  } catch (err) {
    if (err instanceof Unauthorized) { signOut("The token is no longer valid: run kadlan web again."); return; }
    setText($("conn"), "daemon unreachable: " + (err.message || err));
  }
  schedule(POLL_MS);
}

async function start() {
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (await signIn($("login-token").value)) schedule(0);
  });
  $("create-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const req = { name: $("create-name").value.trim(), private: $("create-private").checked };
    const pool = $("create-ipv4").value.trim();
    if (pool) req.ipv4 = pool;
    act($("create-button"), () => call("POST", "/v1/networks/create", req));
  });
  // The address kadlan web prints carries the token in the fragment, which
  // the browser never sends; take it and drop it from the address bar.
  const m = /(?:^#|&)token=([0-9a-fA-F]+)/.exec(location.hash);
  if (m) {
    history.replaceState(null, "", location.pathname);
    token = m[1];
  }
  if (!token) { signOut(""); return; }
  if (await signIn(token)) schedule(0);
}

start();
