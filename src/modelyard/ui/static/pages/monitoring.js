// A deployment's monitoring: per-feature drift scores over time, one drift check in full
// with reference vs live histograms of its most drifted features, live accuracy per
// version once labels arrive, the alerts (acknowledge one, see who did) and the
// decisions, each linked to its evidence (the drift check, the gate's or the canary
// analysis' figures).
import {
  api, post, el, show, link, enc, table, facts, chart, bars, num, percent, when, ago, askReason, notice,
} from "../app.js";

const ACCURACY_EVERY = 6;  // refreshes (of 5 s) between two reads of live accuracy
const SPANS = [[3600, "1 hour"], [21600, "6 hours"], [86400, "1 day"], [604800, "7 days"], [2592000, "30 days"]];

const badge = (text, kind) => el("span", { class: `badge ${kind || ""}` }, text);
const verdict = (drifted) => (drifted === null || drifted === undefined ? "–"
  : drifted ? badge("DRIFT", "bad") : badge("no drift", "good"));

function pageLink(name, params) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== null && v !== undefined));
  return `#/deployments/${enc(name)}/monitoring?${query}`;
}

// The figures behind a decision, folded: a <details> holding a table or the raw JSON.
// ``key`` names it across redraws, so what a person opened stays open.
function folded(summary, key, ...body) {
  return el("details", { "data-key": key }, el("summary", {}, summary), ...body);
}

function figuresTable(figures) {
  const rows = Object.entries(figures || {}).map(([k, v]) => [k, typeof v === "object" && v !== null ? JSON.stringify(v) : num(v, 4)]);
  return table(["Figure", { label: "Value", num: true }], rows, { empty: "No figures." });
}

function categoryBars(title, histogram) {
  // Shares per category as a table-like bar list: readable, and a screen reader reads the numbers.
  const groups = [["reference", histogram.reference], ["live", histogram.live]].filter(([, v]) => v);
  return el("figure", { class: "card" },
    el("figcaption", {}, el("strong", {}, title)),
    table(["Category", ...groups.map(([label]) => ({ label: `${label} share`, num: true }))],
      histogram.categories.map((c, i) => [c, ...groups.map(([, v]) => percent(v[i]))])));
}

function histogramCard(h, feature) {
  const title = `${h.feature}${feature && feature.drifted ? " (drifted)" : ""}`;
  if (!h.live.length && !h.reference) return el("p", { class: "muted" }, `${h.feature}: no values.`);
  if (h.kind === "categorical") return categoryBars(title, h);
  const groups = [];
  if (h.reference) groups.push({ label: "reference (training)", values: h.reference });
  groups.push({ label: `live (${num(h.live_rows)} sampled rows)`, values: h.live });
  const figure = bars(title, h.edges, groups);
  if (feature && feature.score !== null && feature.score !== undefined) {
    figure.append(el("p", { class: "muted" },
      `score ${num(feature.score)} (${feature.effect} ${num(feature.effect_size)}, floor ${num(feature.effect_floor)}); ` +
      `p ${num(feature.p_value)} vs ${num(feature.threshold)}`));
  }
  figure.append(folded("Shares per bin", `bins-${h.feature}`, table(["From", "To", { label: "Reference", num: true }, { label: "Live", num: true }],
    h.live.map((v, i) => [num(h.edges[i]), num(h.edges[i + 1]), h.reference ? percent(h.reference[i]) : "–", percent(v)]))));
  return figure;
}

function checkSection(data) {
  const c = data.check;
  const byName = Object.fromEntries(c.features.map((f) => [f.name, f]));
  const mv = c.multivariate;
  return el("section", { class: "card", id: "check", "aria-labelledby": "check-title" },
    el("h2", { id: "check-title", tabindex: "-1" }, `Drift check #${c.id} (v${c.version})`),
    facts([
      ["Window", `${when(c.window_start)} – ${when(c.window_end)}`],
      ["Verdict", verdict(c.dataset_drift)],
      ["Rows", `${num(c.rows)} live, ${num(c.n_reference)} reference`],
      ["Drifted features", c.drifted_features.join(", ") || "none"],
      ["Features jointly", mv ? [verdict(mv.drifted), ` ${mv.test}: ${mv.features.join(" × ")} ` +
        `(${num(mv.reference_value)} → ${num(mv.live_value)}, p ${num(mv.p_value)})`] : "–"],
      ["Model output", c.prediction_drift ? [verdict(c.prediction_drift.drifted), ` score ${num(c.prediction_drift.score)}`] : "not tested"],
    ]),
    el("h3", {}, "Reference vs live, most drifted first"),
    el("p", { class: "muted" }, `Live side: a sample of ${num(data.sample.rows)} rows spread over the window ` +
      `(the newest ${num(data.sample.per_stratum)} of each of ${data.sample.strata} slices). ` +
      "Values beyond the ends are counted in the end bins."),
    el("div", { class: "grid" }, data.histograms.map((h) => histogramCard(h, byName[h.feature] || (h.feature.startsWith("output") ? c.prediction_drift : null)))),
    folded("Every feature's test", "features",
      table(["Feature", "Test", { label: "p-value", num: true }, { label: "Threshold", num: true }, "Effect",
        { label: "Effect size", num: true }, { label: "Floor", num: true }, { label: "Score", num: true }, "Drifted"],
      c.features.map((f) => [f.name, f.test, num(f.p_value), num(f.threshold), f.effect || "–", num(f.effect_size),
        num(f.effect_floor), num(f.score), f.drifted ? badge("yes", "bad") : "no"]))));
}

// The period's ends as empty points, so that a line of a few checks spans the period
// chosen rather than a scale the chart invents around them.
function framed(start, end, xs, lines) {
  return [[start, ...xs, end], lines.map((l) => ({ ...l, values: [null, ...l.values, null] }))];
}

function driftCharts(drift, start, end) {
  const versions = Object.entries(drift.versions);
  if (!versions.length) {
    return [el("p", { class: "muted" }, "No drift checks stored in this period. A server checks every ",
      el("code", {}, "monitoring.check_interval_s"), "; ", el("code", {}, "modelyard monitor check"), " runs one now.")];
  }
  return versions.map(([version, s]) => el("div", { class: "grid" },
    chart(`v${version}: drift score per feature (1 = the effect floor)`,
      ...framed(start, end, s.at, s.features.map((f) => ({ label: f, values: s.scores[f] }))), { points: true }),
    chart(`v${version}: share of features drifted`,
      ...framed(start, end, s.at, [{ label: "share", values: s.share_drifted.map((x) => x * 100) }]),
      { unit: "%", points: true })));
}

function accuracySection(accuracy, reference) {
  const versions = Object.entries(accuracy.versions);
  const labelled = versions.some(([, s]) => s.labelled.some((n) => n > 0));
  if (!labelled) {
    return [el("p", { class: "muted" }, "No labels joined yet. Post them to ", el("code", {}, "/v1/feedback"),
      " (", el("code", {}, "modelyard feedback"), "): live accuracy appears here per version.")];
  }
  const metric = accuracy.metric;
  const known = versions.filter(([v]) => reference[v] && reference[v][metric] !== undefined)
    .map(([v]) => [`v${v} at registration`, num(reference[v][metric])]);
  return [
    el("div", { class: "grid" },
      chart(`Live ${metric}`, accuracy.starts, versions.map(([v, s]) => ({ label: `v${v}`, values: s.value })), { points: true }),
      chart("Labelled rows (in the sample)", accuracy.starts, versions.map(([v, s]) => ({ label: `v${v}`, values: s.labelled })), { points: true })),
    el("p", { class: "muted" }, `Buckets of ${num(accuracy.bucket_s / 60)} min; each from its newest ${num(accuracy.sample_per_bucket)} requests and the labels posted for them.`),
    known.length ? facts(known) : null,
  ];
}

function evidenceOf(name, e) {
  const ev = e.evidence;
  if (!ev) return null;
  if (ev.type === "drift_check") {
    return el("span", {}, " → ", link(pageLink(name, { check: ev.id }), `drift check #${ev.id}`),
      ` (v${ev.version}, ${ev.dataset_drift ? "drift" : "no drift"}, ${percent(ev.share_drifted)} of features${ev.exact ? "" : "; the check before it"})`);
  }
  if (ev.type === "alert") return el("span", {}, " → ", link(`#alert-${ev.id}`, `alert #${ev.id}`), `: ${ev.reason}`);
  if (ev.type === "gate") {
    return folded(`Gate figures of retrain ${ev.retrain} (${ev.outcome.replace("retrain.", "")})`, `gate-${e.at}-${e.kind}`,
      el("p", {}, ev.reason),
      ev.gate ? figuresTable(ev.gate) : null,
      el("div", { class: "grid" },
        el("div", {}, el("h4", {}, "Candidate"), figuresTable(ev.candidate)),
        el("div", {}, el("h4", {}, "Champion"), figuresTable(ev.champion))),
      el("p", { class: "muted" }, `on ${num(ev.holdout_rows)} held-out rows`));
  }
  if (ev.type === "canary_analysis") {
    return folded(`Canary analysis: ${ev.verdict || ""}`, `canary-${e.at}-${e.kind}`,
      figuresTable(ev.figures),
      ev.checks.length ? table(Object.keys(ev.checks[0]), ev.checks.map((c) => Object.values(c).map((v) => (typeof v === "object" && v !== null ? JSON.stringify(v) : num(v, 4))))) : null,
      el("p", {}, link(`#/deployments/${enc(name)}`, "The rollout on the deployment page")));
  }
  return null;
}

function alertList(name, alerts, now, onAck) {
  if (!alerts.length) return el("p", { class: "muted" }, "No alerts in this period.");
  return el("ul", { class: "timeline" }, alerts.map((a) => el("li", { id: `alert-${a.id}` },
    el("time", { datetime: new Date(a.at * 1000).toISOString(), title: when(a.at) }, ago(a.at, now)),
    badge(a.metric || "alert", a.acknowledged ? "" : "bad"), " ",
    `#${a.id} ${a.reason}`,
    evidenceOf(name, a),
    " ",
    a.acknowledged
      ? el("span", { class: "muted" }, `— acknowledged by ${a.acknowledged.actor || "someone"} ${ago(a.acknowledged.at, now)}: ${a.acknowledged.reason}`)
      : el("button", { type: "button", onclick: () => onAck(a) }, "Acknowledge"),
    folded("Figures", `alert-${a.id}`, figuresTable(a.payload.figures)))));
}

function decisionList(name, decisions, now) {
  if (!decisions.length) return el("p", { class: "muted" }, "No decisions in this period.");
  return el("ul", { class: "timeline" }, decisions.map((d) => el("li", {},
    el("time", { datetime: new Date(d.at * 1000).toISOString(), title: when(d.at) }, ago(d.at, now)),
    badge(d.kind), " ", d.reason, d.actor ? el("span", { class: "muted" }, ` — ${d.actor}`) : "",
    evidenceOf(name, d),
    folded("Payload", `payload-${d.at}-${d.kind}`, el("pre", {}, JSON.stringify(d.payload, null, 2))))));
}

export async function render(main, [name], query) {
  let span = Number(query.get("span")) || 86400;
  let chosen = Number(query.get("check")) || null;
  let lastSignature = null;
  let shownCheck = null;
  const checkNode = el("div", {});
  const accuracyNode = el("div", {}, el("p", { class: "muted" }, "Loading…"));
  let accuracySignature = null;
  let ticks = 0;

  // Live accuracy reads logged payloads: it loads with the page and every
  // ACCURACY_EVERY-th refresh after, not on each.
  async function loadAccuracy() {
    try {
      const data = await api(`deployments/${enc(name)}/accuracy?span=${span}`);
      const { now, ...rest } = data;
      const signature = JSON.stringify(rest);
      if (signature === accuracySignature) return;
      accuracySignature = signature;
      show(accuracyNode, ...accuracySection(data, data.reference_metrics));
    } catch (error) {
      show(accuracyNode, el("p", { class: "error", role: "alert" }, error.message));
    }
  }

  async function loadCheck(id) {
    if (id === null || id === shownCheck) return;
    try {
      const data = await api(`deployments/${enc(name)}/drift/${id}`);
      shownCheck = id;
      show(checkNode, checkSection(data));
    } catch (error) {
      show(checkNode, el("p", { class: "error", role: "alert" }, error.message));
    }
  }

  async function acknowledge(alert) {
    const reason = await askReason(`Acknowledge alert #${alert.id}`, [el("p", {}, alert.reason)]);
    if (!reason) return;
    try {
      await post(`deployments/${enc(name)}/alerts/${alert.id}/ack`, { reason });
      notice(main, `Alert #${alert.id} acknowledged.`, "good");
      lastSignature = null;
      await draw();
    } catch (error) { notice(main, error.message); }
  }

  async function draw() {
    const data = await api(`deployments/${enc(name)}/monitoring?span=${span}`);
    const { now, ...rest } = data;
    const signature = JSON.stringify(rest);
    if (signature === lastSignature) return;  // unchanged: keep what is open and focused
    lastSignature = signature;
    const open = new Set([...main.querySelectorAll("details[open]")].map((d) => d.dataset.key));
    // By default the champion's latest check: the traffic most people get.
    const champion = data.checks.find((c) => c.version === data.versions.champion);
    const latest = champion ? champion.id : data.checks.length ? data.checks[0].id : null;
    const spans = SPANS.some(([value]) => value === span) ? SPANS : [...SPANS, [span, `${num(span / 3600)} hours`]];
    const picker = el("select", {
      id: "span",
      onchange: (e) => { span = Number(e.target.value); lastSignature = null; accuracySignature = null; draw(); loadAccuracy(); },
    }, spans.map(([value, label]) => el("option", { value, selected: value === span }, label)));
    const v = data.versions;
    show(main,
      el("h1", {}, `Monitoring: ${name}`),
      el("p", {},
        link(`#/deployments/${enc(name)}`, `deployment ${name}`), " · ",
        link(`#/models/${enc(data.model)}`, `model ${data.model}`), " · ",
        link(`#/requests?deployment=${enc(name)}`, "logged requests")),
      facts([
        ["Champion", v.champion ? `v${v.champion}` : "–"],
        ["Canary", v.canary ? `v${v.canary}` : "–"],
        ["Shadows", v.shadows.map((s) => `v${s}`).join(", ") || "–"],
      ]),
      el("form", { class: "inline", onsubmit: (e) => e.preventDefault() }, el("label", { for: "span" }, "Period", picker)),
      el("h2", {}, "Drift over time"),
      ...driftCharts(data.drift, now - data.span_s, now),
      el("h2", {}, "Latest drift checks"),
      table(["Window end", "Version", { label: "Rows", num: true }, "Verdict", { label: "Features drifted", num: true }, "Drifted features", "Output", ""],
        data.checks.map((c) => [when(c.window_end), `v${c.version}`, num(c.rows), verdict(c.dataset_drift), percent(c.share_drifted),
          c.drifted_features.join(", ") || "–", verdict(c.prediction_drift),
          link(pageLink(name, { span, check: c.id }), `check #${c.id}`)]),
        { empty: "No drift checks in this period." }),
      checkNode,
      el("h2", {}, "Live accuracy"),
      accuracyNode,
      el("h2", {}, "Alerts"),
      alertList(name, data.alerts, now, acknowledge),
      el("h2", {}, "Decisions"),
      decisionList(name, data.decisions, now),
    );
    for (const d of main.querySelectorAll("details")) if (open.has(d.dataset.key)) d.open = true;
    await loadCheck(chosen || latest);
  }

  await Promise.all([draw(), loadAccuracy()]);
  if (chosen) {
    const heading = document.getElementById("check-title");
    if (heading) { heading.scrollIntoView(); heading.focus(); }
  }
  return async () => {
    ticks += 1;
    await Promise.all([draw(), ticks % ACCURACY_EVERY === 0 ? loadAccuracy() : null]);
  };
}
