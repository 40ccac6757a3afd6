// The dashboard's shell: the router, the data calls, sign-in, and the pieces every page
// draws with (tables, charts, the traffic split, the reason dialog). Pages live in
// pages/*.js; each exports `render(main, params, query)`, which draws the page and
// returns a function that refreshes it, called every REFRESH_MS while the page is open.

const REFRESH_MS = 5000;

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function call(method, path, body) {
  const options = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["content-type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(`/ui/api/${path}`, options);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { error: text }; }
  if (!response.ok) {
    if (response.status === 401 && path !== "login") showLogin();
    throw new ApiError(response.status, (data && data.error) || response.statusText);
  }
  return data;
}

export const api = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body);

// el("a", {href: "#/"}, "text", child...): an element; attributes starting "on" are listeners.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export const link = (href, text) => el("a", { href }, text);

// Replace a node's children, skipping the null/false a conditional part gives.
export function show(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}
export const enc = encodeURIComponent;

export function when(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const date = new Date(seconds * 1000);
  return date.toLocaleString(undefined, { hour12: false });
}

export function ago(seconds, now = Date.now() / 1000) {
  const d = Math.max(0, now - seconds);
  if (d < 90) return `${Math.round(d)} s ago`;
  if (d < 5400) return `${Math.round(d / 60)} min ago`;
  if (d < 129600) return `${Math.round(d / 3600)} h ago`;
  return `${Math.round(d / 86400)} days ago`;
}

export function num(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return value.toLocaleString();
  return Number(value.toPrecision(digits)).toLocaleString();
}

export const percent = (share) =>
  share === null || share === undefined ? "–" : `${(share * 100).toFixed(share < 0.01 ? 2 : 1)}%`;

// table(["a", {label: "b", num: true}], rows, {caption}): rows are arrays of cells.
export function table(columns, rows, { caption, empty = "Nothing yet." } = {}) {
  if (!rows.length) return el("p", { class: "muted" }, empty);
  const heads = columns.map((c) => (typeof c === "string" ? { label: c } : c));
  return el(
    "table", {},
    caption ? el("caption", { class: "muted" }, caption) : null,
    el("thead", {}, el("tr", {}, heads.map((c) => el("th", { scope: "col", class: c.num ? "num" : null }, c.label)))),
    el("tbody", {}, rows.map((row) =>
      el("tr", {}, row.map((cell, i) => el("td", { class: heads[i] && heads[i].num ? "num" : null }, cell))))),
  );
}

export function facts(pairs) {
  return el("dl", { class: "facts" }, pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

const PALETTE = ["#0550ae", "#8a4600", "#116329", "#6639ba", "#a40e26", "#1b7c83"];

// A traffic split as a bar: {champion: 90, canary: 10}.
export function splitBar(weights, labels = {}) {
  const entries = Object.entries(weights);
  const text = entries.map(([arm, w]) => `${labels[arm] || arm} ${num(w)}%`).join(", ");
  return el("div", { class: "split", role: "img", "aria-label": `Traffic split: ${text}` },
    entries.filter(([, w]) => w > 0).map(([arm, w], i) =>
      el("div", { class: `arm-${i % 5}`, style: `width:${w}%`, title: `${labels[arm] || arm}: ${w}%` },
        `${labels[arm] || arm} ${num(w)}%`)));
}

// chart(title, xs (unix seconds), [{label, values}], {unit}): a line chart (uPlot) with
// a text summary for screen readers. {xLabel: "step"} when xs are not times but steps;
// {fromZero: false} for values that may be negative or far from zero (a metric's history).
export function chart(title, xs, lines, { unit = "", height = 220, points = false, xLabel = null, fromZero = true } = {}) {
  const box = el("figure", { class: "card chart" });
  const summary = lines.map((l) => {
    const last = [...l.values].reverse().find((v) => v !== null && v !== undefined);
    return `${l.label}: latest ${num(last)}${unit}`;
  }).join("; ");
  box.append(el("figcaption", {}, el("strong", {}, title), " ", el("span", { class: "muted" }, unit ? `(${unit.trim()})` : "")));
  const plot = el("div", { role: "img", "aria-label": `${title}. ${summary || "no data"}` });
  box.append(plot);
  if (!xs.length || !lines.length) {
    plot.append(el("p", { class: "muted" }, "No data in this period."));
    return box;
  }
  requestAnimationFrame(() => {
    const width = Math.max(320, plot.clientWidth || 600);
    const options = {
      width, height,
      series: [xLabel ? { label: xLabel } : {}, ...lines.map((l, i) => ({
        label: l.label, stroke: PALETTE[i % PALETTE.length], width: 2, spanGaps: false,
        points: { show: points, size: 5 },
      }))],
      axes: [{ space: 90 }, { size: 70, values: (u, ticks) => ticks.map((t) => num(t) + unit) }],
      // from zero, so a flat line of zeros sits at the bottom rather than mid-chart
      scales: {
        x: { time: !xLabel },
        y: fromZero ? { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } : {},
      },
      legend: { live: true },
    };
    // uPlot is a classic script (vendored), loaded with defer before this module runs
    new window.uPlot(options, [xs, ...lines.map((l) => l.values)], plot);
  });
  return box;
}

// bars(title, edges, [{label, values}]): histograms on shared bin edges, as SVG.
export function bars(title, edges, groups) {
  const width = 420, height = 160, pad = 24;
  const bins = edges.length - 1;
  const top = Math.max(1e-12, ...groups.flatMap((g) => g.values));
  const slot = (width - pad) / Math.max(bins, 1);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height + 20}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${title}: ${groups.map((g) => g.label).join(" vs ")} over ${bins} bins`);
  groups.forEach((g, gi) => {
    g.values.forEach((v, i) => {
      const r = document.createElementNS(svg.namespaceURI, "rect");
      const h = (v / top) * height;
      r.setAttribute("x", pad + i * slot + (gi * slot) / groups.length);
      r.setAttribute("y", height - h);
      r.setAttribute("width", Math.max(1, slot / groups.length - 1));
      r.setAttribute("height", h);
      r.setAttribute("fill", PALETTE[gi % PALETTE.length]);
      svg.append(r);
    });
  });
  const legend = el("p", { class: "muted" }, groups.map((g, gi) =>
    el("span", { style: `color:${PALETTE[gi % PALETTE.length]};margin-right:12px` }, `■ ${g.label}`)));
  return el("figure", { class: "card" }, el("figcaption", {}, el("strong", {}, title)), svg, legend,
    el("p", { class: "muted" }, `from ${num(edges[0])} to ${num(edges[edges.length - 1])}`));
}

// Ask why before an action: resolves to the reason, or null when cancelled.
export function askReason(title, extra = []) {
  return new Promise((resolve) => {
    const reason = el("input", { name: "reason", required: true, autocomplete: "off", size: 40 });
    const dialog = el("dialog", { "aria-label": title },
      el("form", { method: "dialog" },
        el("h2", {}, title),
        extra,
        el("label", {}, "Why (kept in the history)", reason),
        el("div", { class: "actions" },
          el("button", { value: "cancel", type: "button", onclick: () => { dialog.close(); resolve(null); } }, "Cancel"),
          el("button", { class: "primary", value: "ok" }, "Confirm"))));
    dialog.addEventListener("close", () => {
      if (dialog.returnValue === "ok" && reason.value.trim()) resolve(reason.value.trim());
      else resolve(null);
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
    reason.focus();
  });
}

// A message that outlives the page's redraws: in the #notices live region.
export function notice(_main, text, kind = "error") {
  const node = el("p", { class: kind, role: kind === "error" ? "alert" : "status" }, text);
  document.getElementById("notices").append(node);
  setTimeout(() => node.remove(), 8000);
}

// -- sign-in ------------------------------------------------------------------------------

function showLogin() {
  const main = document.getElementById("main");
  stopRefresh();
  const token = el("input", { type: "password", name: "token", required: true, autocomplete: "current-password" });
  const name = el("input", { name: "name", required: true, autocomplete: "username" });
  const message = el("p", { role: "alert", class: "error" });
  const form = el("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      try {
        await post("login", { token: token.value, name: name.value });
        route();
      } catch (error) { message.textContent = error.message; }
    },
  },
  el("label", {}, "Your name (actions are recorded under it)", name),
  el("label", {}, "The server's token", token),
  el("button", { class: "primary", type: "submit" }, "Sign in"), message);
  main.replaceChildren(el("section", { class: "login" }, el("h1", {}, "Sign in to modelyard"), form));
  name.focus();
}

async function showWho() {
  const who = document.getElementById("who");
  try {
    const me = await api("session");
    who.replaceChildren(me.name ? `Signed in as ${me.name}` : "");
    if (me.token_required && me.name) {
      who.append(" ", el("button", { onclick: async () => { await post("logout", {}); showLogin(); } }, "Sign out"));
    }
    return me;
  } catch { return null; }
}

// -- routing ------------------------------------------------------------------------------

const PAGES = [
  [/^\/$/, "overview"],
  [/^\/deployments\/([^/]+)$/, "deployment"],
  [/^\/deployments\/([^/]+)\/monitoring$/, "monitoring"],
  [/^\/models$/, "models"],
  [/^\/models\/([^/]+)$/, "model"],
  [/^\/models\/([^/]+)\/versions\/(\d+)$/, "version"],
  [/^\/runs$/, "runs"],
  [/^\/runs\/([^/]+)$/, "run"],
  [/^\/requests$/, "requests"],
];

let timer = null;
function stopRefresh() { if (timer) clearInterval(timer); timer = null; }

async function route() {
  stopRefresh();
  const main = document.getElementById("main");
  const [path, search] = (location.hash.slice(1) || "/").split("?");
  const query = new URLSearchParams(search || "");
  for (const link of document.querySelectorAll("header nav a")) {
    const target = link.getAttribute("href").slice(1);
    const current = target === "/" ? path === "/" || path.startsWith("/deployments") : path.startsWith(target);
    if (current) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  const me = await showWho();
  if (me && me.token_required && !me.name) { showLogin(); return; }
  const found = PAGES.find(([pattern]) => pattern.test(path));
  if (!found) {
    main.replaceChildren(el("h1", {}, "Not found"), el("p", {}, "No page at ", el("code", {}, path), ". ", link("#/", "Overview")));
    return;
  }
  const params = path.match(found[0]).slice(1).map(decodeURIComponent);
  const page = await import(`./pages/${found[1]}.js`);
  main.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  try {
    const refresh = await page.render(main, params, query);
    if (typeof refresh === "function") {
      timer = setInterval(() => refresh().catch((error) => notice(main, error.message)), REFRESH_MS);
    }
  } catch (error) {
    if (error.status === 401) return;
    main.replaceChildren(el("h1", {}, "Could not load this page"), el("p", { class: "error", role: "alert" }, error.message));
  }
}

window.addEventListener("hashchange", route);
route();
