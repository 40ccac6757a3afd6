// One model: its aliases (each movable, asking why) and their latest moves, its versions
// newest first a page at a time, the deployments serving it and their retraining history.
import { api, post, el, show, link, enc, table, facts, num, when, ago, askReason, notice } from "../app.js";
import { card, subhead, keysetPager, joined, bytes, short } from "./parts.js";

const versionLink = (model, v) => (v === null || v === undefined ? "–" : link(`#/models/${enc(model)}/versions/${v}`, `v${v}`));
const runLink = (id) => (id ? link(`#/runs/${enc(id)}`, short(id, 8)) : "–");

function metricsText(row) {
  const text = Object.entries(row.metrics).map(([k, v]) => `${k} ${num(v)}`).join(", ");
  return row.more_metrics ? `${text} (+${row.more_metrics})` : text || "–";
}

function versionInput(value) {
  return el("input", { name: "version", type: "number", min: 1, step: 1, required: true, value, inputmode: "numeric" });
}

// Ask for the version (and for a new alias, its name) and why; then move it.
async function moveAlias(main, model, alias, current, latest, done) {
  const version = versionInput(current || latest || 1);
  const name = alias ? null : el("input", { name: "alias", required: true, pattern: "[a-z][a-z0-9_\\-]{0,62}", autocomplete: "off" });
  const extra = [
    name ? el("label", { style: "margin-bottom:10px" }, "Alias (lowercase letters, digits, _ or -)", name) : null,
    el("label", { style: "margin-bottom:10px" }, alias ? `Point ${alias} at version` : "At version", version),
  ];
  const reason = await askReason(alias ? `Move alias ${alias} of ${model}` : `Set an alias of ${model}`, extra);
  if (!reason) return;
  const target = alias || name.value.trim();
  try {
    const move = await post(`models/${enc(model)}/aliases/${enc(target)}`, { version: Number(version.value), reason });
    notice(main, `${move.alias}: v${move.from_version ?? "–"} → v${move.to_version}.`, "good");
    await done();
  } catch (error) { notice(main, error.message); }
}

function aliasPanel(main, data, done) {
  const model = data.model;
  const rows = Object.entries(model.aliases).map(([alias, v]) => [
    el("strong", {}, alias), versionLink(model.name, v),
    el("button", { type: "button", onclick: () => moveAlias(main, model.name, alias, v, model.latest_version, done),
      "aria-label": `Move alias ${alias}` }, "Move…"),
  ]);
  return card("Aliases",
    table(["Alias", "Version", ""], rows, { empty: "No aliases yet." }),
    el("div", { class: "actions" },
      el("button", { type: "button", onclick: () => moveAlias(main, model.name, null, null, model.latest_version, done) },
        "Set a new alias…")),
    subhead("Latest moves"),
    table(["When", "Alias", "From", "To", "By", "Why"],
      data.alias_history.map((m) => [
        el("span", { title: when(m.at) }, ago(m.at)), m.alias, versionLink(model.name, m.from_version),
        versionLink(model.name, m.to_version), m.actor || "–", m.reason || ""]),
      { empty: "No moves yet.",
        caption: data.alias_moves > data.alias_history.length ? `The latest ${data.alias_history.length} of ${num(data.alias_moves)} moves` : null }));
}

function retrainPanel(model, found) {
  if (!found.deployments.length) return null;
  const told = found.deployments.filter((d) => d.episodes.length);
  return card("Retraining history",
    told.length ? told.flatMap((d) => [
      subhead("Deployment ", link(`#/deployments/${enc(d.deployment)}`, d.deployment)),
      table(["#", "Started", "Trigger", "Run", "Version", "Outcome", "Story"],
        d.episodes.map((e) => [num(e.retrain), when(e.started_at), e.trigger || "–", runLink(e.run_id),
          versionLink(model, e.version), e.outcome, e.story])),
    ]) : el("p", { class: "muted" }, "No retrains of this model's deployments yet: `modelyard retraining set` plans them."));
}

export async function render(main, [name]) {
  const pages = keysetPager();
  async function draw() {
    const token = pages.token;
    const [data, retrains] = await Promise.all([
      api(`models/${enc(name)}?limit=50${token ? `&page_token=${enc(token)}` : ""}`),
      api(`models/${enc(name)}/retrains`),
    ]);
    const m = data.model;
    const rows = data.versions.map((v) => [
      versionLink(m.name, v.version),
      joined(v.aliases.map((a) => el("span", { class: "badge" }, a)), ""),
      el("span", { title: when(v.created_at) }, ago(v.created_at)),
      v.created_by || "–",
      runLink(v.run_id),
      versionLink(m.name, v.parent_version),
      metricsText(v),
      v.flavour,
      bytes(v.artifact_size),
    ]);
    show(main,
      el("h1", {}, `Model ${m.name}`),
      m.description ? el("p", {}, m.description) : null,
      facts([
        ["Latest version", versionLink(m.name, m.latest_version)],
        ["Deployments", joined(data.deployments.map((d) =>
          el("span", {}, link(`#/deployments/${enc(d.name)}`, d.name), ` (v${d.champion}${d.canary ? ` → v${d.canary}` : ""})`)))],
        ["Tags", Object.entries(m.tags).map(([k, v]) => `${k}=${v}`).join(", ") || "–"],
        ["Registered", when(m.created_at)],
        ["Updated", when(m.updated_at)],
      ]),
      aliasPanel(main, data, draw),
      el("h2", {}, "Versions"),
      table(["Version", "Aliases", "Registered", "By", "Run", "Parent", "Metrics", "Format", "Size"], rows,
        { empty: "No versions yet." }),
      pages.controls(data.next_page_token, draw, "Pages of versions"),
      retrainPanel(m.name, retrains),
    );
  }
  await draw();
  return draw;
}
