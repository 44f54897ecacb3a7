// Sluice admin dashboard: reads the admin JSON API and renders it. No
// framework, no build step. The bearer token comes from the URL fragment
// (#token=...) or a prompt, and is kept in sessionStorage only; it is
// removed from the address bar at once so it is not bookmarked or shared.
"use strict";

const tokenKey = "sluice-admin-token";
let asked = false; // the token prompt was shown and cancelled
let timer;

function takeToken() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(tokenKey, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(tokenKey) || "";
}

async function api(path) {
  const headers = {};
  const token = takeToken();
  if (token) headers["Authorization"] = "Bearer " + token;
  const resp = await fetch(path, { headers, cache: "no-store" });
  if (resp.status === 401) {
    // Ask once; a cancelled prompt stops the refreshes until a reload.
    const t = asked ? null : prompt("Admin token (admin.token):");
    asked = true;
    if (t) {
      sessionStorage.setItem(tokenKey, t);
      asked = false;
      return api(path);
    }
    clearInterval(timer);
    throw new Error("unauthorized: open this page with #token=… (admin.token)");
  }
  if (!resp.ok) throw new Error(path + ": " + resp.status + " " + resp.statusText);
  return resp.json();
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(tbody, cells) {
  const tr = document.createElement("tr");
  for (const c of cells) tr.appendChild(c instanceof Node ? c : el("td", c));
  tbody.appendChild(tr);
  return tr;
}

function num(v, cls) {
  const td = el("td", v, "num" + (cls ? " " + cls : ""));
  return td;
}

function empty(tbody, cols, text) {
  const td = el("td", text, "empty");
  td.colSpan = cols;
  row(tbody, [td]);
}

function renderRoutes(t) {
  const tbody = document.querySelector("#routes-table tbody");
  tbody.replaceChildren();
  const routes = t.routes || [];
  if (!routes.length) empty(tbody, 8, "no routes");
  for (const r of routes) {
    const eps = el("td");
    for (const e of r.backend.endpoints || []) {
      eps.appendChild(el("div", e.address + " (" + e.requests + " req, " + e.failures + " fail)", e.ejected ? "ejected" : ""));
    }
    if (!(r.backend.endpoints || []).length) eps.appendChild(el("span", "none", "failing"));
    const filters = el("td", (r.filters || []).join(" → "), r.filterError ? "failing" : "");
    if (r.filterError) filters.title = r.filterError;
    row(tbody, [el("td", r.host, "host"), el("td", r.path), el("td", r.pathType), el("td", r.backend.name),
      eps, filters, el("td", r.source), el("td", r.tls ? "yes" : "")]);
  }
  if (t.defaultBackend) {
    row(tbody, [el("td", "(default backend)"), el("td", ""), el("td", ""), el("td", t.defaultBackend.name),
      el("td", (t.defaultBackend.endpoints || []).map(e => e.address).join(", ")), el("td", ""), el("td", ""), el("td", "")]);
  }
}

function renderCertificates(list) {
  const tbody = document.querySelector("#certificates-table tbody");
  tbody.replaceChildren();
  if (!list.length) empty(tbody, 6, "no certificates");
  for (const c of list) {
    const cls = c.daysLeft < 0 ? "expired" : c.daysLeft < 14 ? "soon" : "healthy";
    const days = num(c.daysLeft, cls + " days-left");
    row(tbody, [el("td", (c.names || []).join(", "), "cert-names"), el("td", c.kind), el("td", c.issuer),
      el("td", new Date(c.notAfter).toISOString().slice(0, 10)), days, el("td", c.source)]);
  }
}

function renderFilters(list) {
  const tbody = document.querySelector("#filters-table tbody");
  tbody.replaceChildren();
  if (!list.length) empty(tbody, 8, "no filters loaded");
  for (const f of list) {
    const outcomes = Object.entries(f.outcomes || {}).filter(([, v]) => v > 0).map(([k, v]) => k + ": " + v).join(", ");
    const bad = f.failures > 0 ? "failing" : "";
    const pool = f.pool ? f.pool.inUse + " / " + f.pool.size : "";
    row(tbody, [el("td", f.name, "filter-name"), el("td", f.kind), num(f.calls), num(f.failures, bad + " filter-errors"),
      num((100 * f.errorRate).toFixed(1) + " %", bad), el("td", outcomes), el("td", pool),
      el("td", f.digest ? f.digest.slice(0, 12) : "")]);
  }
}

function renderWarnings(w) {
  const info = document.getElementById("build-info");
  info.textContent = "Built " + new Date(w.built).toLocaleString() +
    (w.lastError ? "; the last build failed: " + w.lastError : "");
  info.className = w.lastError ? "failing" : "";
  const ul = document.getElementById("warnings-list");
  ul.replaceChildren();
  if (!w.warnings.length) ul.appendChild(el("li", "no warnings", "empty"));
  for (const x of w.warnings) {
    const kind = x.object.kind, ns = x.object.namespace;
    ul.appendChild(el("li", kind + " " + (ns ? ns + "/" : "") + x.object.name + ": " + x.message));
  }
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    // Routes first, alone: a missing token is asked for once, not four times.
    const routes = await api("/api/routes");
    const [certs, filters, warnings] = await Promise.all([
      api("/api/certificates"), api("/api/filters"), api("/api/warnings")]);
    renderRoutes(routes);
    renderCertificates(certs);
    renderFilters(filters);
    renderWarnings(warnings);
    status.textContent = "updated " + new Date().toLocaleTimeString();
    status.className = "";
    document.body.dataset.loaded = "true";
  } catch (e) {
    status.textContent = String(e.message || e);
    status.className = "error";
  }
}

refresh();
timer = setInterval(refresh, 5000);
