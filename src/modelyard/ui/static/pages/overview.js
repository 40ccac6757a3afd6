// Overview: every deployment (its split, traffic and errors of the last five minutes),
// every model, and the latest decisions.
import { api, el, show, link, enc, table, splitBar, num, percent, ago, when } from "../app.js";

export function eventList(events, now) {
  if (!events.length) return el("p", { class: "muted" }, "No events yet.");
  return el("ul", { class: "timeline" }, events.map((e) =>
    el("li", {},
      el("time", { datetime: new Date(e.at * 1000).toISOString(), title: when(e.at) }, ago(e.at, now)),
      el("span", { class: "badge" }, e.kind), " ",
      e.subject ? link(`#/deployments/${enc(e.subject)}`, e.subject) : "", " ",
      e.reason, e.actor ? el("span", { class: "muted" }, ` — ${e.actor}`) : "",
      Object.keys(e.payload || {}).length
        ? el("details", {}, el("summary", {}, "figures"), el("pre", {}, JSON.stringify(e.payload, null, 2)))
        : null)));
}

export async function render(main) {
  async function draw() {
    const data = await api("overview");
    const rows = data.deployments.map((d) => [
      link(`#/deployments/${enc(d.name)}`, d.name),
      link(`#/models/${enc(d.model)}`, d.model),
      `v${d.champion}` + (d.canary ? ` → v${d.canary}` : ""),
      el("div", { style: "min-width:180px" }, splitBar(d.split)),
      d.rollout ? `${d.rollout.phase} at ${num(d.rollout.weight)}%` : d.experiment ? "experiment" : "steady",
      num(d.requests_5m),
      el("span", { class: d.error_rate_5m > 0.01 ? "bad" : null }, percent(d.error_rate_5m)),
      link(`#/deployments/${enc(d.name)}/monitoring`, "monitoring"),
    ]);
    const models = data.models.map((m) => [
      link(`#/models/${enc(m.name)}`, m.name),
      m.latest_version ? `v${m.latest_version}` : "–",
      Object.entries(m.aliases).map(([a, v]) => `${a} → v${v}`).join(", ") || "–",
      ago(m.updated_at, data.now),
    ]);
    show(main,
      el("h1", {}, "Overview"),
      el("h2", {}, "Deployments"),
      table(["Deployment", "Model", "Versions", "Traffic split", "State",
        { label: "Requests (5 min)", num: true }, { label: "Errors (5 min)", num: true }, ""], rows,
      { empty: "No deployments yet: `modelyard deploy create` makes one." }),
      el("h2", {}, "Models"),
      table(["Model", "Latest", "Aliases", "Updated"], models, { empty: "No models registered yet." }),
      el("h2", {}, "Latest decisions"),
      eventList(data.events, data.now),
    );
  }
  await draw();
  return draw;
}
