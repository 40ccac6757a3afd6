// Pieces the models, model, version, runs and run pages share (not a page of its own):
// keyset paging, a titled card, sizes, durations and short digests.
import { el } from "../app.js";

// Keyset paging: the server gives each page the token of the next; the tokens seen so
// far make "Previous" possible.
export function keysetPager() {
  let tokens = [null]; // tokens[i]: where page i starts (null: the first page)
  let index = 0;
  return {
    get token() { return tokens[index]; },
    reset() { tokens = [null]; index = 0; },
    // The pager's controls for a page whose next token is `next`; `redraw` draws again.
    controls(next, redraw, label) {
      const go = (step) => async () => {
        if (step > 0) tokens[index + 1] = next;
        index += step;
        await redraw();
      };
      if (index === 0 && !next) return null;
      return el("nav", { class: "pager", "aria-label": label },
        el("button", { type: "button", disabled: index === 0, onclick: go(-1) }, "← Previous"),
        el("span", { class: "muted" }, `Page ${index + 1}`),
        el("button", { type: "button", disabled: !next, onclick: go(1) }, "Next →"));
    },
  };
}

// "1.2 MB", "340 kB": a size in bytes for people.
export function bytes(size) {
  if (size === null || size === undefined) return "–";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = size, unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
  return `${unit ? value.toFixed(value < 10 ? 1 : 0) : value} ${units[unit]}`;
}

// "3 min 12 s": how long something took.
export function duration(start, end) {
  if (start === null || start === undefined || end === null || end === undefined) return "–";
  const s = Math.max(0, end - start);
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 90) return `${s.toFixed(1)} s`;
  if (s < 5400) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

export const short = (digest, n = 12) => (digest ? String(digest).slice(0, n) : "–");

// Nodes joined by ", " in one span (a table cell of links).
export const joined = (nodes, empty = "–") =>
  nodes.length ? el("span", {}, nodes.flatMap((node, i) => (i ? [", ", node] : [node]))) : empty;

// A titled card, spaced from its neighbours; a region named by its title.
export const card = (title, ...children) =>
  el("section", { class: "card", style: "margin:16px 0", "aria-label": title },
    el("h2", { style: "margin-top:0" }, title), ...children);

// A heading inside a card: smaller than the card's own title.
export const subhead = (...children) => el("h3", { style: "font-size:1rem;margin:14px 0 6px" }, ...children);
