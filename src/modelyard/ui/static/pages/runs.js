// Runs: newest first, a page at a time, filtered with the run filter language
// (`metrics.auc > 0.9 and params.model = 'rf'`), with a few chosen param and metric
// columns (the page's most common by default), so hundreds of metrics never make
// hundreds of columns. The filter and the columns live in the address: shareable.
// The form is drawn once; a refresh redraws the table only, never what is being typed.
import { api, el, show, link, enc, table, num, when, ApiError } from "../app.js";
import { keysetPager, duration } from "./parts.js";

const STATUSES = ["", "RUNNING", "FINISHED", "FAILED", "KILLED"];
const COLUMN_LIMIT = 8;

function address(state) {
  const query = new URLSearchParams();
  for (const key of ["filter", "experiment", "status"]) if (state[key]) query.set(key, state[key]);
  if (state.columns !== null) query.set("columns", state.columns.join(","));
  const text = query.toString();
  return `#/runs${text ? `?${text}` : ""}`;
}

function columnPicker(offered, shown) {
  const columns = [...new Set([...shown, ...offered.metrics.map((k) => `metrics.${k}`), ...offered.params.map((k) => `params.${k}`)])];
  if (!columns.length) return [];
  return columns.map((column) => el("label", { style: "flex-direction:row;align-items:center;gap:4px" },
    el("input", { type: "checkbox", name: "column", value: column, checked: shown.includes(column) }), column));
}

export async function render(main, params, query) {
  const state = {
    filter: query.get("filter") || "",
    experiment: query.get("experiment") || "",
    status: query.get("status") || "",
    columns: query.has("columns") ? query.get("columns").split(",").filter(Boolean) : null,
  };
  const filter = el("input", { id: "run-filter", name: "filter", size: 48, value: state.filter, autocomplete: "off",
    placeholder: "metrics.auc > 0.9 and params.model = 'rf'" });
  const experiment = el("input", { id: "run-experiment", name: "experiment", size: 14, value: state.experiment });
  const status = el("select", { id: "run-status", name: "status" },
    STATUSES.map((s) => el("option", { value: s, selected: state.status === s }, s || "any")));
  const picker = el("fieldset", { style: "display:flex;flex-wrap:wrap;gap:4px 16px;border:1px solid var(--line)" });
  const summary = el("summary", {}, "Columns");
  const details = el("details", { style: "flex-basis:100%" }, summary, picker);
  const form = el("form", {
    class: "inline", role: "search", "aria-label": "Filter runs",
    onsubmit: (event) => {
      event.preventDefault();
      const checked = [...picker.querySelectorAll("input:checked")].map((b) => b.value);
      location.hash = address({
        filter: filter.value.trim(), experiment: experiment.value.trim(), status: status.value,
        columns: picker.childElementCount > 1 ? checked.slice(0, COLUMN_LIMIT) : state.columns,
      });
    },
  },
  el("label", {}, "Filter", filter),
  el("label", {}, "Experiment", experiment),
  el("label", {}, "Status", status),
  el("button", { class: "primary", type: "submit" }, "Apply"),
  details);
  const results = el("div", { "aria-live": "polite" });
  show(main, el("h1", {}, "Runs"), form, results);

  const pages = keysetPager();
  async function draw() {
    const search = new URLSearchParams({ limit: "50" });
    for (const key of ["filter", "experiment", "status"]) if (state[key]) search.set(key, state[key]);
    if (state.columns !== null) search.set("columns", state.columns.join(","));
    if (pages.token) search.set("page_token", pages.token);
    let data;
    try {
      data = await api(`runs?${search}`);
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 422) throw error;
      show(results, el("p", { class: "error", role: "alert" }, error.message)); // e.g. a filter that does not parse
      return;
    }
    if (!details.open) { // never redraw the boxes someone is ticking
      summary.textContent = `Columns: ${data.columns.length} shown (up to ${COLUMN_LIMIT})`;
      show(picker, el("legend", { class: "muted" }, "Params and metrics logged by the runs on this page"),
        columnPicker(data.offered, data.columns));
    }
    const now = Date.now() / 1000;
    const rows = data.runs.map((r) => [
      link(`#/runs/${enc(r.id)}`, r.name),
      el("span", { class: r.status === "FAILED" ? "badge bad" : r.status === "FINISHED" ? "badge good" : "badge" }, r.status),
      when(r.start_time),
      duration(r.start_time, r.end_time ?? (r.status === "RUNNING" ? now : null)),
      r.experiment,
      ...r.values.map((value) => num(value, 4)),
    ]);
    show(results,
      table(["Run", "Status", "Started", "Duration", "Experiment", ...data.columns.map((c) => ({ label: c, num: true }))], rows,
        { empty: state.filter ? "No run matches this filter." : "No runs yet: `yard.start_run` records one." }),
      pages.controls(data.next_page_token, draw, "Pages of runs"));
  }
  await draw();
  return draw;
}
