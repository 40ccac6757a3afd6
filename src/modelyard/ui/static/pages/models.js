// Models: every registered model, a page at a time by name, with its latest version,
// its aliases and the deployments serving it.
import { api, el, show, link, enc, table, ago } from "../app.js";
import { keysetPager, joined } from "./parts.js";

export async function render(main) {
  const pages = keysetPager();
  async function draw() {
    const token = pages.token;
    const data = await api(`models?limit=50${token ? `&page_token=${enc(token)}` : ""}`);
    const now = Date.now() / 1000;
    const rows = data.models.map((m) => [
      link(`#/models/${enc(m.name)}`, m.name),
      m.latest_version ? link(`#/models/${enc(m.name)}/versions/${m.latest_version}`, `v${m.latest_version}`) : "–",
      joined(Object.entries(m.aliases).map(([a, v]) =>
        el("span", {}, `${a} → `, link(`#/models/${enc(m.name)}/versions/${v}`, `v${v}`)))),
      joined(m.deployments.map((d) => link(`#/deployments/${enc(d)}`, d))),
      m.description || "",
      el("span", { title: new Date(m.updated_at * 1000).toISOString() }, ago(m.updated_at, now)),
    ]);
    show(main,
      el("h1", {}, "Models"),
      table(["Model", "Latest", "Aliases", "Deployments", "Description", "Updated"], rows,
        { empty: "No models registered yet: `modelyard register` or `registry.register` adds one." }),
      pages.controls(data.next_page_token, draw, "Pages of models"));
  }
  await draw();
  return draw;
}
