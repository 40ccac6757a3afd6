// One run: what it logged (params, metrics with a chart of each history, tags), what it
// stored (artifacts, the datasets' fingerprints) and what it ran on (environment).
// A few metrics are charted at once; any other is charted on demand.
import { api, el, show, link, enc, table, facts, chart, num, when, notice } from "../app.js";
import { card, duration, short } from "./parts.js";

function metricChart(history) {
  const thinned = history.points > history.steps.length ? ` (${num(history.steps.length)} of ${num(history.points)} points)` : "";
  return chart(`${history.key}${thinned}`, history.steps, [{ label: history.key, values: history.values }], { xLabel: "step", fromZero: false, points: history.steps.length <= 60 });
}

function environmentPanel(environment) {
  const packages = environment.packages || {};
  return card("Environment",
    facts([
      ["Python", `${environment.python || "–"} (${environment.implementation || "–"})`],
      ["Platform", environment.platform || "–"],
      ["Machine", environment.machine || "–"],
    ]),
    table(["Package", "Version"], Object.entries(packages).sort(), { empty: "No package versions recorded." }));
}

const pairs = (object) => Object.entries(object).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

export async function render(main, [id]) {
  let charted = null; // the keys the server charts (null: its choice, the first few)
  const added = []; // the keys charted on demand, one history each
  async function draw() {
    const data = await api(`runs/${enc(id)}${charted ? `?charts=${enc(charted.join(","))}` : ""}`);
    const r = data.run;
    charted = data.charts.map((c) => c.key);
    const grid = el("div", { class: "grid" }, data.charts.map(metricChart));
    const history = (key) => api(`runs/${enc(r.id)}/metric?key=${enc(key)}`);
    for (const found of await Promise.all(added.map(history))) grid.append(metricChart(found));
    const addChart = async (key, button) => {
      try {
        grid.append(metricChart(await history(key)));
        added.push(key);
        button.replaceWith(el("span", { class: "muted" }, "charted"));
      } catch (error) { notice(main, error.message); }
    };
    const metricRows = pairs(r.metrics).map(([key, value]) => {
      const button = charted.includes(key) || added.includes(key) ? null
        : el("button", { type: "button", "aria-label": `Chart ${key}`, onclick: (e) => addChart(key, e.currentTarget) }, "Chart");
      return [el("code", {}, key), num(value, 6), button || el("span", { class: "muted" }, "charted")];
    });
    show(main,
      el("h1", {}, `Run ${r.name}`),
      el("p", { class: "muted" }, "id ", el("code", {}, r.id)),
      facts([
        ["Status", el("span", { class: r.status === "FAILED" ? "badge bad" : r.status === "FINISHED" ? "badge good" : "badge" }, r.status)],
        ["Experiment", r.experiment],
        ["Started", when(r.start_time)],
        ["Duration", duration(r.start_time, r.end_time ?? (r.status === "RUNNING" ? Date.now() / 1000 : null))],
        ["User", r.user || "–"],
        ["Seed", r.seed ?? "–"],
        ["Git commit", r.git_commit ? el("code", {}, r.git_commit) : "–"],
      ]),
      el("h2", {}, "Metrics"),
      grid,
      table(["Metric", { label: "Latest", num: true }, ""], metricRows, { empty: "No metrics logged." }),
      el("div", { class: "grid" },
        card("Params",
          table(["Param", "Value"], pairs(r.params).map(([k, v]) => [el("code", {}, k), v]), { empty: "No params logged." })),
        card("Tags",
          table(["Tag", "Value"], pairs(r.tags).map(([k, v]) => [el("code", {}, k), v]), { empty: "No tags." }))),
      card("Artifacts",
        table(["Name", "sha256"], pairs(r.artifacts).map(([name, digest]) => [name, el("code", { title: digest }, short(digest, 16))]),
          { empty: "No artifacts stored." })),
      card("Datasets",
        table(["Dataset", { label: "Rows", num: true }, "Columns", "sha256"],
          pairs(r.datasets).map(([name, d]) => [name, num(d.rows), d.schema.slice(0, 12).map((c) => c[0]).join(", ") + (d.schema.length > 12 ? ` (+${d.schema.length - 12})` : ""),
            el("code", { title: d.digest }, short(d.digest, 16))]),
          { empty: "No dataset fingerprints recorded (`run.log_dataset`)." })),
      environmentPanel(r.environment),
      el("p", {}, link("#/runs", "All runs")),
    );
    return r.status;
  }
  const status = await draw();
  // Only a running run changes: refresh that one, leave a finished one's charts still.
  return status === "RUNNING" ? draw : null;
}
