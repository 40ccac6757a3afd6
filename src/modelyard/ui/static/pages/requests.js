// The inference log: search by deployment, request id, status, version, arm, labels and
// time, newest first, a page at a time; and one request in full (#/requests?deployment=
// NAME&id=ID): its inputs, the features fetched for it, its outputs, status, error,
// latency, version and arm, and the labels posted for it.
import { api, el, show, link, enc, table, facts, num, when } from "../app.js";

const FIELDS = ["deployment", "id", "status", "version", "arm", "labelled", "since", "until", "limit"];
const ROWS_SHOWN = 50;  // rows of a many-row request drawn in its tables

// datetime-local inputs speak local time; the URL and the API speak epoch seconds.
function toLocalInput(seconds) {
  if (!seconds) return "";
  const date = new Date(Number(seconds) * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}
const fromLocalInput = (text) => (text ? String(new Date(text).getTime() / 1000) : "");

function statusBadge(status) {
  return el("span", { class: `badge ${status >= 500 ? "bad" : status >= 400 ? "warn" : "good"}` }, String(status));
}

function labelText(labels) {
  const entries = Object.entries(labels || {});
  return entries.length ? entries.map(([row, label]) => `row ${row}: ${JSON.stringify(label)}`).join(", ") : "–";
}

function requestLink(r) {
  return link(`#/requests?deployment=${enc(r.deployment)}&id=${enc(r.request_id)}`, r.request_id);
}

// {name: [value per row]} as a table: one row per logged row, one column per name.
function columnsTable(title, columns, empty) {
  const names = Object.keys(columns || {});
  if (!names.length) return el("p", { class: "muted" }, empty);
  const rows = Math.max(...names.map((n) => columns[n].length));
  const shown = Math.min(rows, ROWS_SHOWN);
  const cell = (v) => (v === null || v === undefined ? "–" : typeof v === "object" ? JSON.stringify(v) : num(v, 6));
  const body = [];
  for (let i = 0; i < shown; i++) body.push([String(i), ...names.map((n) => cell(columns[n][i]))]);
  return el("div", { style: "overflow-x:auto" },
    table([{ label: "Row" }, ...names.map((n) => ({ label: n, num: true }))], body, { caption: title }),
    rows > shown ? el("p", { class: "muted" }, `The first ${shown} of ${num(rows)} rows.`) : null);
}

function detailCard(record) {
  return el("section", { class: "card", "aria-label": `Request ${record.request_id}, ${record.arm}` },
    el("h2", {}, `Request ${record.request_id}`, " ", el("span", { class: "muted" }, `(${record.arm})`)),
    facts([
      ["Time", when(record.ts)],
      ["Deployment", link(`#/deployments/${enc(record.deployment)}`, record.deployment)],
      ["Model", link(`#/models/${enc(record.model)}/versions/${record.version}`, `${record.model} v${record.version}`)],
      ["Arm", record.arm],
      ["Status", statusBadge(record.status)],
      ["Error", record.error ? el("span", { class: "error" }, record.error) : "–"],
      ["Latency", `${num(record.latency_ms, 4)} ms`],
      ["Rows", num(record.rows)],
      ["Labels", labelText(record.labels)],
    ]),
    el("h3", {}, "Inputs (as sent)"),
    columnsTable("Inputs", record.inputs, "No inputs logged (the request failed before the model, or its inputs could not be kept)."),
    el("h3", {}, "Features (fetched from the feature store)"),
    columnsTable("Fetched features", record.features, "None fetched: this deployment reads no features."),
    el("h3", {}, "Outputs"),
    columnsTable("Outputs", record.outputs, "No outputs logged."),
    el("details", {}, el("summary", {}, "As JSON"), el("pre", {}, JSON.stringify(record, null, 2))));
}

function searchForm(values, deployments, onSearch) {
  const input = (name, label, attrs = {}) => el("label", {}, label, el("input", { name, value: values[name] || "", ...attrs }));
  const select = (name, label, options) => el("label", {}, label, el("select", { name },
    options.map(([value, text]) => el("option", { value, selected: (values[name] || "") === value }, text))));
  const form = el("form", {
    class: "inline", role: "search", "aria-label": "Search logged requests",
    onsubmit: (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const params = new URLSearchParams();
      for (const name of FIELDS) {
        let value = (data.get(name) || "").trim();
        if (name === "since" || name === "until") value = fromLocalInput(value);
        if (value) params.set(name, value);
      }
      onSearch(params);
    },
  },
  select("deployment", "Deployment", [["", "all (a request id search)"],
    ...[...new Set([...deployments, ...(values.deployment ? [values.deployment] : [])])].map((d) => [d, d])]),
  input("id", "Request id", { size: 22, autocomplete: "off", spellcheck: "false" }),
  input("status", "Status", { size: 8, placeholder: "ok, error, 422", list: "statuses" }),
  el("datalist", { id: "statuses" }, ["ok", "error", "200", "422", "500", "503"].map((s) => el("option", { value: s }))),
  input("version", "Version", { type: "number", min: 1, size: 5 }),
  input("arm", "Arm", { size: 10, placeholder: "champion", list: "arms" }),
  el("datalist", { id: "arms" }, ["champion", "canary", "shadow", "primary"].map((s) => el("option", { value: s }))),
  select("labelled", "Labels", [["", "any"], ["true", "labelled"], ["false", "unlabelled"]]),
  el("label", {}, "From", el("input", { name: "since", type: "datetime-local", step: 1, value: toLocalInput(values.since) })),
  el("label", {}, "Until", el("input", { name: "until", type: "datetime-local", step: 1, value: toLocalInput(values.until) })),
  select("limit", "Per page", [["", "50"], ["25", "25"], ["100", "100"], ["200", "200"]]),
  el("button", { class: "primary", type: "submit" }, "Search"));
  return form;
}

export async function render(main, params, query) {
  const values = Object.fromEntries(FIELDS.map((f) => [f, query.get(f) || ""]));
  const cursors = [null];  // the cursor of each page shown so far: back pops, on pushes
  let lastSignature = null;
  const results = el("div", { "aria-live": "polite" });

  function search(next) {
    const target = `#/requests?${next}`;
    if (location.hash === target) draw(true); else location.hash = target;
  }

  async function fetchPage() {
    const params = new URLSearchParams();
    for (const f of FIELDS) if (values[f]) params.set(f, values[f]);
    const cursor = cursors[cursors.length - 1];
    if (cursor) params.set("cursor", cursor);
    return api(`requests?${params}`);
  }

  async function detail(data) {
    // One request id: its records in full (its answer, then any shadow's copy).
    const found = data.requests;
    if (!found.length) {
      return el("p", { class: "muted", role: "status" },
        `No request ${values.id} in the inference log${values.deployment ? ` of ${values.deployment}` : ""} ` +
        "(the log runs about a second behind the answers; sampled-out requests are not logged).");
    }
    const deployments = [...new Set(found.map((r) => r.deployment))];
    const cards = [];
    for (const name of deployments) {
      const full = await api(`deployments/${enc(name)}/requests/${enc(values.id)}`);
      cards.push(...full.records.map(detailCard));
    }
    return el("div", {}, cards);
  }

  function listing(data) {
    const rows = data.requests.map((r) => [
      when(r.ts), requestLink(r), `v${r.version}`, r.arm, statusBadge(r.status),
      r.error || "–", num(r.latency_ms, 4), num(r.rows), labelText(r.labels),
    ]);
    const page = cursors.length;
    const older = () => { cursors.push(data.next); lastSignature = null; draw(true); };
    const newer = () => { cursors.pop(); lastSignature = null; draw(true); };
    const stopped = data.searched_from
      ? el("p", { class: "muted", role: "status" },
        `Searched the records after ${when(data.searched_from)}; older ones are read when you ask for the next page.`)
      : null;
    return el("div", {},
      table(["Time", "Request id", "Version", "Arm", "Status", "Error", { label: "Latency ms", num: true },
        { label: "Rows", num: true }, "Labels"], rows,
      { caption: `${data.deployment}: page ${page}, newest first`, empty: "No logged request matches on this page." }),
      stopped,
      el("div", { class: "pager" },
        el("button", { type: "button", disabled: page === 1, onclick: newer }, "Newer"),
        el("button", { type: "button", disabled: !data.next, onclick: older }, data.searched_from && !rows.length ? "Search older" : "Older")));
  }

  async function present(data) {
    if (values.id) show(results, await detail(data));
    else if (!values.deployment) show(results, el("p", { class: "muted" }, "Choose a deployment, or give a request id."));
    else show(results, listing(data));
  }

  async function draw(force = false) {
    let data;
    try {
      data = await fetchPage();
    } catch (error) {
      if (error.status === 401) throw error;
      show(results, el("p", { class: "error", role: "alert" }, error.message));
      lastSignature = null;
      return;
    }
    const signature = JSON.stringify(data);
    if (!force && signature === lastSignature) return;  // unchanged: keep focus and scroll
    lastSignature = signature;
    await present(data);
  }

  let data = null;
  let failure = null;
  try { data = await fetchPage(); } catch (error) { if (error.status === 401) throw error; failure = error; }
  show(main,
    el("h1", {}, values.id ? `Request ${values.id}` : "Logged requests"),
    searchForm(values, data ? data.deployments : [], search),
    values.id ? el("p", {}, link(`#/requests${values.deployment ? `?deployment=${enc(values.deployment)}` : ""}`, "Back to the list")) : null,
    results);
  if (failure) show(results, el("p", { class: "error", role: "alert" }, failure.message));
  else { lastSignature = JSON.stringify(data); await present(data); }
  // Only the newest page refreshes: an older one stays as it was read.
  return async () => { if (cursors.length === 1) await draw(); };
}
