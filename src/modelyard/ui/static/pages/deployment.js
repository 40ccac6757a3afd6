// One deployment: its split, request and error rates, p50/p99 per version over time,
// the rollout's steps and verdicts, the experiment's report, its decisions; and the
// rollout's controls (pause, resume, promote, abort), each asking why.
import {
  api, post, el, show, link, enc, table, facts, splitBar, chart, num, percent, when, askReason, notice,
} from "../app.js";
import { eventList } from "./overview.js";

const SPANS = [[900, "15 min"], [3600, "1 hour"], [21600, "6 hours"], [86400, "1 day"], [604800, "7 days"]];

function lines(series, key) {
  return Object.entries(series.versions).map(([version, figures]) => ({ label: `v${version}`, values: figures[key] }));
}

function rolloutPanel(deployment, onAction) {
  const rollout = deployment.rollout;
  if (!rollout) return el("p", { class: "muted" }, "No rollout. Start one with `modelyard rollout start`.");
  const state = rollout.state;
  const active = ["progressing", "paused"].includes(state.phase);
  const button = (action, label, primary = false) => el("button", {
    class: primary ? "primary" : null, disabled: !active || (action === "resume" && state.phase !== "paused")
      || (action === "pause" && state.phase === "paused"),
    onclick: () => onAction(action),
  }, label);
  const steps = rollout.policy.step_weights;
  return el("div", {},
    facts([
      ["Canary", `v${rollout.canary}`],
      ["Phase", el("span", { class: `badge ${state.phase === "rolled_back" ? "bad" : state.phase === "promoted" ? "good" : ""}` }, state.phase)],
      ["Weight", `${num(state.weight)}% (step ${state.step_index + 1} of ${steps.length}: ${steps.join(" → ")})`],
      ["Failed checks", `${state.failed_checks} of ${rollout.policy.failure_threshold} allowed`],
      ["Started by", rollout.started_by || "–"],
    ]),
    el("div", { class: "actions", role: "group", "aria-label": "Rollout controls" },
      button("pause", "Pause"), button("resume", "Resume"), button("promote", "Promote now", true), button("abort", "Abort")),
    el("h3", {}, "Verdicts"),
    table(["When", "Verdict", "Phase", { label: "Weight", num: true }, "Why"],
      [...state.history].reverse().map((e) => [when(e.at), e.verdict, e.phase, `${num(e.weight)}%`, e.reason]),
      { empty: "No analysis yet." }));
}

function experimentPanel(deployment, report) {
  const experiment = deployment.config.experiment;
  if (!experiment) return null;
  const body = report
    ? [el("p", {}, el("strong", {}, report.verdict), ` (${report.design}): ${report.reason}`),
      table(["Arm", { label: "n", num: true }, { label: "Estimate", num: true }, { label: "Lift", num: true }, "95% CI", { label: "p", num: true }],
        report.arms.map((a) => [a.name, num(a.n), num(a.estimate), a.lift === null ? "–" : num(a.lift),
          a.ci_low === null || a.ci_low === undefined ? "–" : `${num(a.ci_low)} … ${num(a.ci_high)}`, num(a.p_value)]))]
    : [el("p", { class: "muted" }, "No report yet: `modelyard ab report` computes one.")];
  return el("section", { class: "card" }, el("h2", {}, "A/B experiment"), ...body);
}

export async function render(main, [name], query) {
  let span = Number(query.get("span")) || 3600;
  async function act(action) {
    const reason = await askReason(`${action[0].toUpperCase() + action.slice(1)} the rollout of ${name}`);
    if (!reason) return;
    try {
      await post(`deployments/${enc(name)}/rollout/${action}`, { reason });
      notice(main, `Rollout ${action}: done.`, "good");
      await draw();
    } catch (error) { notice(main, error.message); }
  }
  async function draw() {
    const data = await api(`deployments/${enc(name)}?span=${span}`);
    const d = data.deployment;
    const s = data.summary;
    const xs = data.series.starts;
    const picker = el("select", { id: "span", onchange: (e) => { span = Number(e.target.value); draw(); } },
      SPANS.map(([value, label]) => el("option", { value, selected: value === span }, label)));
    show(main,
      el("h1", {}, `Deployment ${d.name}`),
      el("p", {}, link(`#/models/${enc(d.config.model)}`, `model ${d.config.model}`), " · ",
        link(`#/deployments/${enc(d.name)}/monitoring`, "monitoring"), " · ",
        link(`#/requests?deployment=${enc(d.name)}`, "logged requests")),
      el("section", { class: "card" },
        el("h2", {}, "Traffic split"), splitBar(s.split, Object.fromEntries(Object.entries(s.arms).map(([a, v]) => [a, `${a} v${v}`]))),
        facts([
          ["Champion", `v${d.config.champion}`],
          ["Canary", d.config.canary ? `v${d.config.canary}` : "–"],
          ["Shadows", d.config.shadows.map((x) => {
            const agreed = (data.shadow_agreement || {})[String(x.version)];
            const figures = agreed && agreed.compared
              ? `: ${percent(agreed.share)} of ${num(agreed.compared)} rows agreed with the primary`
              : "";
            return `v${x.version} (${percent(x.share)} mirrored)${figures}`;
          }).join("; ") || "–"],
          ["Requests (5 min)", num(s.requests_5m)],
          ["Error rate (5 min)", percent(s.error_rate_5m)],
          ["Revision", `${d.revision}, updated ${when(d.updated_at)}`],
        ])),
      el("form", { class: "inline", onsubmit: (e) => e.preventDefault() }, el("label", { for: "span" }, "Period", picker)),
      el("div", { class: "grid" },
        chart("Requests per second", xs, lines(data.series, "requests_per_s"), { unit: "/s" }),
        chart("Errors per second", xs, lines(data.series, "errors_per_s"), { unit: "/s" }),
        chart("p50 latency", xs, lines(data.series, "p50_ms"), { unit: " ms", points: true }),
        chart("p99 latency", xs, lines(data.series, "p99_ms"), { unit: " ms", points: true })),
      el("p", { class: "muted" }, `Buckets of ${num(data.series.bucket_s)} s; percentiles from each bucket's latest requests.`),
      el("section", { class: "card" }, el("h2", {}, "Rollout"), rolloutPanel(d, act)),
      experimentPanel(d, data.experiment_report),
      el("h2", {}, "Decisions"),
      eventList(data.events, data.now),
    );
  }
  await draw();
  return draw;
}
