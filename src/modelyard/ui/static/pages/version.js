// One version: where it came from (run, data fingerprints, parent), its metrics, its
// signature, the reference profile it was registered with, its tags and its artifact.
import { api, el, show, link, enc, table, facts, bars, num, percent, when } from "../app.js";
import { card, subhead, joined, bytes, short } from "./parts.js";

function lineagePanel(model, data) {
  const { run, data: fingerprint, run_datasets: datasets, parent } = data.lineage;
  let runCell = "–";
  if (run && run.found) {
    runCell = el("span", {}, link(`#/runs/${enc(run.id)}`, run.name), ` (${run.status}, ${run.experiment}, started ${when(run.start_time)})`);
  } else if (run) {
    runCell = el("span", {}, el("code", {}, short(run.id)), " (no longer recorded)");
  }
  const schema = fingerprint && fingerprint.schema ? fingerprint.schema : [];
  return card("Lineage",
    facts([
      ["Run", runCell],
      ["Parent version", parent ? link(`#/models/${enc(model)}/versions/${parent}`, `v${parent}`) : "–"],
      ["Training data", fingerprint
        ? el("span", {}, `${num(fingerprint.rows)} rows, ${schema.length} columns, sha256 `, el("code", { title: fingerprint.digest }, short(fingerprint.digest, 16)))
        : "–"],
    ]),
    Object.keys(datasets).length
      ? [subhead("Datasets the run recorded"),
        table(["Dataset", { label: "Rows", num: true }, "sha256"],
          Object.entries(datasets).map(([name, d]) => [name, num(d.rows), el("code", { title: d.digest }, short(d.digest, 16))]))]
      : null);
}

function fieldRows(fields) {
  return fields.map((f) => [
    el("code", {}, f.name), f.dtype, f.shape && f.shape.length ? `[${f.shape.join(", ")}]` : "scalar",
    f.minimum === null || f.minimum === undefined ? "–" : num(f.minimum),
    f.maximum === null || f.maximum === undefined ? "–" : num(f.maximum),
    f.categories ? f.categories.slice(0, 8).join(", ") + (f.categories.length > 8 ? ` (+${f.categories.length - 8})` : "") : "–",
  ]);
}

function signaturePanel(signature) {
  const heads = ["Name", "Type", "Shape", { label: "Min", num: true }, { label: "Max", num: true }, "Categories"];
  return card("Signature",
    el("p", { class: "muted" }, `Layout: ${signature.layout}`),
    subhead("Inputs"), table(heads, fieldRows(signature.inputs), { empty: "No inputs recorded." }),
    subhead("Outputs"), table(heads, fieldRows(signature.outputs), { empty: "No outputs recorded." }));
}

function columnRows(columns) {
  return columns.map((c) => c.kind === "categorical"
    ? [el("code", {}, c.name), `categorical (${num(c.categories)})`, "–", "–", "–", "–", "–",
      c.top.slice(0, 3).map((t) => `${t.value} ${percent(t.share)}`).join(", "), percent(c.nan_fraction)]
    : [el("code", {}, c.name), "numeric", num(c.mean), num(c.std), num(c.min),
      c.quartiles ? c.quartiles.map((q) => num(q)).join(" / ") : "–", num(c.max), "", percent(c.nan_fraction)]);
}

function histograms(columns) {
  const drawn = columns.filter((c) => c.histogram && c.histogram.edges.length > 1);
  if (!drawn.length) return null;
  return el("div", { class: "grid" }, drawn.map((c) =>
    bars(c.name, c.histogram.edges, [{ label: "reference (share of rows)", values: c.histogram.shares }])));
}

function profilePanel(profile) {
  if (!profile) return card("Reference profile", el("p", { class: "muted" }, "This version was registered without a profile."));
  const heads = ["Column", "Kind", { label: "Mean", num: true }, { label: "Std", num: true }, { label: "Min", num: true },
    { label: "Quartiles", num: true }, { label: "Max", num: true }, "Most frequent", { label: "Missing", num: true }];
  const capped = (columns) => columns.length > profile.histogram_columns
    ? el("p", { class: "muted" }, `Histograms of the first ${profile.histogram_columns} of ${columns.length} columns; the table lists all.`) : null;
  return card("Reference profile",
    el("p", { class: "muted" }, `Described ${num(profile.rows)} rows; ${num(profile.sample_rows)} kept as the row sample drift tests compare with.`),
    subhead("Features"), table(heads, columnRows(profile.features)), histograms(profile.features), capped(profile.features),
    subhead("Predictions"), table(heads, columnRows(profile.predictions), { empty: "No prediction columns." }),
    histograms(profile.predictions));
}

export async function render(main, [model, number]) {
  const data = await api(`models/${enc(model)}/versions/${enc(number)}`);
  const v = data.version;
  const trust = v.trust ? `trusted by ${v.trust.by || "–"} on ${when(v.trust.at)}: ${v.trust.reason || "no reason given"}` : "not marked trusted";
  show(main,
    el("h1", {}, `${model} v${v.version}`),
    el("p", {}, link(`#/models/${enc(model)}`, `All versions of ${model}`)),
    v.description ? el("p", {}, v.description) : null,
    facts([
      ["Aliases", joined(v.aliases.map((a) => el("span", { class: "badge" }, a)))],
      ["Format", `${v.flavour} (${trust})`],
      ["Artifact", el("span", {}, `${bytes(v.artifact_size)}, sha256 `, el("code", {}, v.artifact_digest))],
      ["Registered", `${when(v.created_at)} by ${v.created_by || "–"}`],
      ["Tags", Object.entries(v.tags).map(([k, t]) => `${k}=${t}`).join(", ") || "–"],
    ]),
    lineagePanel(model, data),
    card("Metrics",
      table(["Metric", { label: "Value", num: true }], Object.entries(v.metrics).sort().map(([k, m]) => [k, num(m, 4)]),
        { empty: "No metrics were registered with this version." })),
    signaturePanel(v.signature),
    profilePanel(data.profile),
  );
  // A version never changes (its aliases do; the model page shows those live): no refresh.
  return null;
}
