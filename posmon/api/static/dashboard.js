// posmon dashboard: reads the daemon's own API (same origin) and renders it. No framework, no build step.
//
// Prices, quantities and PnL are shown exactly as the API sends them (decimal strings); sums are computed with
// exact decimal arithmetic on those strings. Only percentages and the chart's geometry use floating point.
// Data is written with textContent, never parsed as HTML.
"use strict";

const TOKEN_KEY = "posmon.token";
const STALE_FEED_MS = 30000; // no byte for this long (heartbeats come every 10 s): the feed is reopened
const EXITS_SHOWN = 50;
const HISTORY_REFRESH_MS = 30000; // besides whenever a tranche leaves the status

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- token

function takeTokenFromFragment() {
  const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search); // not left in the address bar
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function authHeaders() {
  const t = token();
  return t ? { Authorization: "Bearer " + t } : {};
}

// ---------------------------------------------------------------- exact decimals (strings in, strings out)

function decParse(s) {
  const m = /^(-?)(\d*)(?:\.(\d*))?$/.exec(String(s).trim());
  if (!m) return null;
  const frac = m[3] || "";
  const digits = (m[2] || "0") + frac;
  return { n: BigInt(m[1] + digits), scale: frac.length };
}

function decFormat(n, scale) {
  const neg = n < 0n;
  let digits = (neg ? -n : n).toString().padStart(scale + 1, "0");
  const out = scale ? digits.slice(0, -scale) + "." + digits.slice(-scale) : digits;
  return (neg ? "-" : "") + out;
}

function decSum(values) {
  const parsed = values.filter((v) => v !== null && v !== undefined).map(decParse).filter(Boolean);
  if (!parsed.length) return null;
  const scale = Math.max(...parsed.map((p) => p.scale));
  let total = 0n;
  for (const p of parsed) total += p.n * 10n ** BigInt(scale - p.scale);
  return decFormat(total, scale);
}

// A decimal string for a cell: as sent, unless it has more than `places` fractional digits (an average entry,
// a PnL computed from one); then rounded half-up exactly to `places`, trailing zeros dropped. [text, exact?]
const SHOWN_PLACES = 8;
function decShown(s, places = SHOWN_PLACES) {
  if (s === null || s === undefined) return [s, true];
  const p = decParse(s);
  if (!p || p.scale <= places) return [String(s), true];
  const drop = 10n ** BigInt(p.scale - places);
  const neg = p.n < 0n;
  let q = (neg ? -p.n : p.n) / drop;
  if (((neg ? -p.n : p.n) % drop) * 2n >= drop) q += 1n;
  let text = decFormat(neg ? -q : q, places).replace(/0+$/, "").replace(/\.$/, "");
  if (/^-0(\.0*)?$/.test(text)) text = text.slice(1);
  return [text, false];
}

// Writes a decimal into a cell (a PnL with `plus`: "+" on gains, no "-" on zero); a shortened one says so
// (dotted underline) and keeps the exact value as its title.
function setDec(node, s, cls, plus = false) {
  const [text, exact] = decShown(s);
  setText(node, text === null || text === undefined ? "-" : plus ? signed(text) : text, cls + (exact ? "" : " rounded"));
  if (exact) node.removeAttribute("title");
  else node.title = `exactly ${s}`;
}

// The same for a new cell.
function decCell(s, cls, plus = false) {
  const td = el("td");
  setDec(td, s, cls, plus);
  return td;
}

function signOf(s) {
  if (s === null || s === undefined) return 0;
  const p = decParse(s);
  return !p || p.n === 0n ? 0 : p.n > 0n ? 1 : -1;
}

// A PnL as sent, with a "+" on gains (and no "-" on a negative zero such as "-0.0").
function signed(s) {
  if (s === null || s === undefined) return s;
  const sign = signOf(s);
  return sign > 0 ? "+" + s : sign === 0 ? String(s).replace(/^-/, "") : s;
}

// ---------------------------------------------------------------- formatting

function pct(x) {
  return Number.isFinite(x) ? (x >= 0 ? "+" : "") + x.toFixed(2) + " %" : "";
}

function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
  let s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  s %= 60;
  const two = (v) => String(v).padStart(2, "0");
  if (d) return `${d}d ${two(h)}h`;
  if (h) return `${h}h ${two(m)}m`;
  if (m) return `${m}m ${two(s)}s`;
  return `${s}s`;
}

function clockTime(unix) {
  const d = new Date(unix * 1000);
  const two = (v) => String(v).padStart(2, "0");
  const time = `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  return d.toDateString() === new Date().toDateString() ? time : `${two(d.getMonth() + 1)}-${two(d.getDate())} ${time}`;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "data") Object.assign(node.dataset, v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function setText(node, text, cls) {
  if (node.textContent !== text) node.textContent = text;
  if (cls !== undefined && node.className !== cls) node.className = cls;
}

function pnlClass(s, base = "num") {
  const sign = signOf(s);
  return base + (sign > 0 ? " pos" : sign < 0 ? " neg" : "");
}

// ---------------------------------------------------------------- state

const state = {
  report: null, // the last status report
  receivedAt: 0, // Date.now() when it arrived (the held times tick locally between reports)
  openIds: null, // tranche ids of the last report (an id gone means an exit: history is reloaded)
  feedAbort: null,
  historyLoading: false,
  historyAgain: false,
};

function showAuth(message) {
  if (state.feedAbort) state.feedAbort.abort();
  state.report = null;
  $("data").hidden = true;
  $("auth").hidden = false;
  $("auth-message").textContent = message;
  $("forget-token").hidden = !token();
  setFeed("off", "token required");
  for (const id of ["venue", "running"]) setText($(id), "-");
  $("streams").replaceChildren();
  $("ratelimit").replaceChildren();
  $("accounts-section").hidden = true;
  $("auth-token").focus();
}

function showData() {
  $("auth").hidden = true;
  $("data").hidden = false;
  $("forget-token").hidden = !token();
}

// Anything but a live feed dims the tables: what they show may be out of date.
function setFeed(kind, text) {
  setText($("feed"), text, "chip " + kind);
  document.body.classList.toggle("stale", kind !== "live");
}

function notice(text, kind = "") {
  const n = $("notice");
  n.textContent = text;
  n.className = kind;
}

// ---------------------------------------------------------------- the live feed (server-sent events via fetch)

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function runFeed() {
  const abort = new AbortController();
  state.feedAbort = abort;
  let failures = 0;
  while (!abort.signal.aborted) {
    let delay = 0;
    const watchdog = new AbortController();
    abort.signal.addEventListener("abort", () => watchdog.abort());
    try {
      const resp = await fetch("/api/stream", { headers: authHeaders(), cache: "no-store", signal: watchdog.signal });
      if (resp.status === 401) {
        showAuth(token() ? "The token was refused. Enter the daemon's API token." : "This daemon requires a bearer token.");
        return;
      }
      if (!resp.ok || !resp.body) {
        delay = 1000 * (Number(resp.headers.get("Retry-After")) || 2);
        setFeed("off", `feed refused (${resp.status}); retrying`);
      } else {
        setFeed("live", "live");
        const how = await readEvents(resp.body, watchdog);
        failures = 0;
        if (how === "end") {
          setFeed("off", "daemon stopped");
          delay = 2000;
        }
      }
    } catch (err) {
      if (abort.signal.aborted) return;
      failures += 1;
      delay = Math.min(5000, 500 * 2 ** failures);
      setFeed("off", "reconnecting");
    }
    await sleep(delay, abort.signal);
  }
}

// Reads one event stream until it ends; answers "end" (daemon stopping), "reconnect" or "closed".
async function readEvents(body, watchdog) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let timer = setTimeout(() => watchdog.abort(), STALE_FEED_MS);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return "closed";
      clearTimeout(timer);
      timer = setTimeout(() => watchdog.abort(), STALE_FEED_MS);
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") event = val;
          else if (field === "data") data.push(val);
        }
        if (event === "status") onStatus(JSON.parse(data.join("\n")));
        else if (event === "end" || event === "reconnect") return event;
      }
    }
  } finally {
    clearTimeout(timer);
    reader.cancel().catch(() => {});
  }
}

function onStatus(report) {
  showData();
  state.report = report;
  state.receivedAt = Date.now();
  setText($("updated"), "updated " + clockTime(Date.now() / 1000));
  renderHeader(report);
  renderPositions(report);
  const ids = new Set(report.tranches.map((t) => t.id));
  const exited = state.openIds === null || [...state.openIds].some((id) => !ids.has(id));
  state.openIds = ids;
  if (exited) loadHistory();
}

// ---------------------------------------------------------------- header: daemon, streams, request budget

// Several venue accounts in one daemon (status "accounts"): each one's state, streams and budget get a table of
// their own and the positions a Venue column; with one venue the header says it all, as it always has.
function severalVenues(r) {
  return (r.accounts || []).length > 1;
}

function streamChips(streams) {
  return streams.map((s) => {
    const age = s.last_frame_age_seconds;
    const ageText = age === null ? "no frame yet" : age < 10 ? age.toFixed(1) + " s ago" : duration(age) + " ago";
    return el("span", { class: "chip " + (s.up ? "ok" : "bad"), title: `${s.name} stream: last frame ${ageText}` },
      `${s.name} ${s.up ? "up" : "DOWN"}`, el("small", { text: " " + ageText }));
  });
}

function budgetChips(rl) {
  if (!rl) return [el("span", { class: "chip", text: "rate limit: n/a" })];
  const budget = (name, frac, perMinute) => {
    const cls = frac < 0.2 ? "bad" : frac < 0.5 ? "warn" : "ok";
    return el("span", { class: "chip " + cls, title: `${name} budget: ${perMinute}/min` },
      `${name} ${Math.round(frac * 100)}%`);
  };
  const parts = [budget("weight", rl.weight_headroom, rl.weight_per_minute),
    budget("orders", rl.orders_headroom, rl.orders_per_minute)];
  if (rl.paused_seconds > 0) parts.push(el("span", { class: "chip bad", text: `paused ${Math.ceil(rl.paused_seconds)} s` }));
  parts.push(el("span", { class: "muted", title: "requests delayed by pacing / rate-limit refusals from the venue",
    text: `paced ${rl.paced} · 429 ${rl.throttled}` }));
  return parts;
}

function renderHeader(r) {
  setText($("venue"), r.venue, "chip");
  setText($("running"), r.running ? "running" : "stopped", "chip " + (r.running ? "ok" : "bad"));
  const several = severalVenues(r);
  $("streams").replaceChildren(...(several ? [] : streamChips(r.streams)));
  $("ratelimit").replaceChildren(...(several ? [] : budgetChips(r.rate_limit)));
  renderAccounts(r, several);
}

const ACCOUNT_STATE = { ready: "ok", starting: "warn", connecting: "warn", unreachable: "bad" };

function renderAccounts(r, several) {
  $("accounts-section").hidden = !several;
  const body = $("accounts").tBodies[0];
  if (!several) {
    body.replaceChildren();
    return;
  }
  body.replaceChildren(...r.accounts.map((a) => {
    const td = (name, ...children) => el("td", { data: { cell: name } }, ...children);
    return el("tr", { data: { venue: a.venue } },
      td("venue", a.venue),
      td("state", el("span", { class: "chip " + (ACCOUNT_STATE[a.state] || "warn"), text: a.state })),
      td("streams", ...streamChips(a.streams)),
      td("budget", ...budgetChips(a.rate_limit)),
      td("exits", a.exits === null ? "-" : a.exits === "exchange" ? "resting" : "emulated"),
      el("td", { class: "num", data: { cell: "positions" }, text: String(a.positions) }),
      td("detail", el("span", { class: "muted", text: a.detail })));
  }));
  const ready = r.accounts.filter((a) => a.state === "ready").length;
  $("accounts-summary").textContent = `${ready} of ${r.accounts.length} ready`;
}

// ---------------------------------------------------------------- positions and tranches

const TRANCHE_CELLS = ["id", "venue", "symbol", "side", "qty", "entry", "mark", "tp", "toTp", "sl", "toSl", "range",
  "exits", "plan", "held", "timeout", "upnl", "action"];
const rows = new Map(); // key -> <tr>, reused so a button under the pointer survives an update

function distances(t) {
  const mark = Number(t.mark);
  if (!t.mark || !(mark > 0)) return [NaN, NaN];
  const tp = Number(t.tp);
  const sl = Number(t.sl);
  return t.side === "LONG" ? [((tp - mark) / mark) * 100, ((mark - sl) / mark) * 100]
    : [((mark - tp) / mark) * 100, ((sl - mark) / mark) * 100];
}

function heldSeconds(t, r) {
  const now = (r.now ?? Date.now() / 1000) + (Date.now() - state.receivedAt) / 1000;
  return now - t.opened_at;
}

function rangeBar(t) {
  // Where the mark sits between SL (left) and TP (right), the entry marked.
  const lo = Number(t.sl);
  const hi = Number(t.tp);
  const span = hi - lo;
  const at = (v) => Math.min(100, Math.max(0, ((Number(v) - lo) / span) * 100));
  const bar = el("div", { class: "range", title: `SL ${t.sl} · entry ${t.entry} · mark ${t.mark ?? "-"} · TP ${t.tp}` });
  const tick = (cls, value) => {
    const node = el(cls === "entry" ? "i" : "b", { class: cls });
    node.style.left = `${at(value)}%`; // CSSOM, not a style attribute: the page's CSP allows no inline style
    bar.append(node);
  };
  tick("entry", t.entry);
  if (t.mark) tick(signOf(t.unrealized_pnl) >= 0 ? "up" : "down", t.mark);
  return bar;
}

// The exit plan in words for the Plan cell's tooltip: the plan, then where each part stands.
function planTitle(p) {
  if (!p) return "one TP, one SL";
  const lines = [p.describe];
  const l = p.ladder;
  if (l) {
    const current = Math.min(l.level + 1, l.of);
    lines.push(`ladder: ${l.level} of ${l.of} levels filled; level ${current} TP ${l.tp} for ${l.level_qty ?? "?"}`);
  }
  const tr = p.trailing;
  if (tr) {
    lines.push(tr.active ? `trailing: active, best mark ${tr.best_mark}, stop ${tr.stop}`
      : `trailing: waits for +${tr.activation_pct} %`);
  }
  const be = p.breakeven;
  if (be) lines.push(`break-even at ${be.stop ?? "?"}: ${be.earned ? "earned" : "not yet"}`);
  return lines.join("\n");
}

function trancheRow(t, r) {
  const key = "t" + t.id;
  let tr = rows.get(key);
  if (!tr) {
    tr = el("tr", { data: { tranche: String(t.id) } });
    for (const name of TRANCHE_CELLS) tr.append(el("td", { data: { cell: name } }));
    tr.lastChild.append(el("button", { type: "button", class: "danger small", data: { action: "close-tranche" },
      text: "Close" }));
    rows.set(key, tr);
  }
  const c = Object.fromEntries([...tr.children].map((td) => [td.dataset.cell, td]));
  const [toTp, toSl] = distances(t);
  setText(c.id, `#${t.id}`, "id");
  c.id.title = `tranche ${t.id} (index ${t.index} of ${t.symbol} ${t.side})`;
  setText(c.venue, t.venue ?? "-", "venue-col");
  setText(c.symbol, t.symbol);
  setText(c.side, t.side, "side " + t.side.toLowerCase());
  setDec(c.qty, t.qty, "num");
  setDec(c.entry, t.entry, "num");
  setDec(c.mark, t.mark, "num");
  setDec(c.tp, t.tp, "num");
  setText(c.toTp, pct(toTp), "num");
  setDec(c.sl, t.sl, "num");
  setText(c.toSl, pct(toSl), "num" + (toSl < 1 ? " warn" : ""));
  c.range.replaceChildren(rangeBar(t));
  // exits_live: the TP and SL are working on the venue (resting) or watched by a running actor (emulated).
  const kind = t.exits === "exchange" ? "resting" : "emulated";
  const notLive = Object.entries(t.exit_orders || {}).filter(([, state]) => state !== "LIVE" && state !== "WATCHED");
  const live = t.exits_live !== false;
  setText(c.exits, live ? kind : `${kind}: ${notLive.map(([leg, state]) => `${leg.toUpperCase()} ${state}`).join(", ") || "NOT LIVE"}`,
    "exits " + t.exits + (live ? "" : " dead"));
  c.exits.title = (t.exits === "exchange" ? "TP limit and SL stop rest on the exchange" : "posmon watches the mark and closes at market")
    + (live ? "" : " - NOT LIVE: this tranche is not fully protected right now");
  setText(c.plan, t.plan ? t.plan.summary : "-", "plan-col");
  c.plan.title = planTitle(t.plan);
  setText(c.held, duration(heldSeconds(t, r)), "num held");
  c.held.dataset.opened = String(t.opened_at);
  setText(c.timeout, t.remaining_seconds === null ? "-" : duration(t.remaining_seconds), "num");
  setDec(c.upnl, t.unrealized_pnl, pnlClass(t.unrealized_pnl), true);
  const button = c.action.firstChild;
  button.dataset.id = String(t.id);
  button.dataset.symbol = t.symbol;
  button.dataset.side = t.side;
  button.disabled = Boolean(t.closing) || button.dataset.busy === "1";
  setText(button, t.closing ? "closing" : "Close");
  tr.classList.toggle("closing", Boolean(t.closing));
  return tr;
}

// venue: the position's venue account when several run (its buttons then name it), else "".
function groupRow(venue, symbol, side, tranches, withPlan) {
  const key = `g${venue}|${symbol}|${side}`;
  let tr = rows.get(key);
  if (!tr) {
    const label = el("td", { class: "group-label" });
    const upnl = el("td", { class: "num" });
    const actions = el("td", { class: "actions" },
      el("button", { type: "button", class: "danger small", data: { action: "close-position", symbol, side, venue },
        text: "Close position" }),
      el("button", { type: "button", class: "small", data: { action: "stop", symbol, venue }, text: "Stop monitoring" }));
    const position = venue ? `${venue} ${symbol} ${side}` : `${symbol} ${side}`;
    tr = el("tr", { class: "group", data: { position } }, label, upnl, actions);
    rows.set(key, tr);
  }
  const [label, upnl] = tr.children;
  // Hidden columns: Plan when no tranche has a plan, Venue with one venue.
  label.colSpan = TRANCHE_CELLS.length - 2 - (withPlan ? 0 : 1) - (venue ? 0 : 1);
  const qty = decSum(tranches.map((t) => t.qty));
  const pnl = decSum(tranches.map((t) => t.unrealized_pnl));
  const n = tranches.length;
  setText(label, `${venue ? venue + " · " : ""}${symbol} ${side} · ${n} tranche${n === 1 ? "" : "s"} · qty ${qty}`);
  setDec(upnl, pnl, pnlClass(pnl), true);
  return tr;
}

function renderPositions(r) {
  const several = severalVenues(r);
  const venueOf = (t) => (several ? t.venue ?? "" : "");
  const groups = new Map();
  for (const t of [...r.tranches].sort((a, b) => venueOf(a).localeCompare(venueOf(b)) || a.symbol.localeCompare(b.symbol)
    || a.side.localeCompare(b.side) || a.index - b.index)) {
    const key = `${venueOf(t)}|${t.symbol}|${t.side}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(t);
  }
  const withPlan = r.tranches.some((t) => t.plan);
  const wanted = [];
  for (const list of groups.values()) {
    wanted.push(groupRow(venueOf(list[0]), list[0].symbol, list[0].side, list, withPlan));
    for (const t of list) wanted.push(trancheRow(t, r));
  }
  for (const [key, tr] of rows) if (!wanted.includes(tr)) rows.delete(key);
  const body = $("positions").tBodies[0];
  const current = [...body.children];
  if (current.length !== wanted.length || current.some((tr, i) => tr !== wanted[i])) body.replaceChildren(...wanted);
  $("positions").hidden = wanted.length === 0;
  $("positions").classList.toggle("with-plan", withPlan);
  $("positions").classList.toggle("multi-venue", several);
  $("no-positions").hidden = wanted.length !== 0;
  const total = decSum(r.tranches.map((t) => t.unrealized_pnl));
  $("positions-summary").textContent = r.tranches.length
    ? `${r.tranches.length} tranche${r.tranches.length === 1 ? "" : "s"} · uPnL ${signed(decShown(total)[0]) ?? "-"}` : "";
  renderUnmonitored(r.unmonitored || [], several);
}

// With several venues each entry is "venue:SYMBOL"; its Resume button names the venue.
function renderUnmonitored(symbols, several) {
  const p = $("unmonitored");
  p.hidden = symbols.length === 0;
  const parse = (s) => {
    const at = several ? s.indexOf(":") : -1;
    return at < 0 ? { venue: "", symbol: s } : { venue: s.slice(0, at), symbol: s.slice(at + 1) };
  };
  p.replaceChildren(...(symbols.length ? [el("span", { class: "muted", text: "Not monitored (posmon's TP/SL cancelled): " })] : []),
    ...symbols.map((s) => el("span", { class: "chip warn" }, s + " ",
      el("button", { type: "button", class: "small", data: { action: "resume", ...parse(s) }, text: "Resume" }))));
}

function tickHeld() {
  const r = state.report;
  if (!r) return;
  for (const td of document.querySelectorAll("#positions td.held")) {
    setText(td, duration(heldSeconds({ opened_at: Number(td.dataset.opened) }, r)));
  }
}

// ---------------------------------------------------------------- history: recent exits and the PnL chart

async function loadHistory() {
  if (state.historyLoading) {
    state.historyAgain = true;
    return;
  }
  state.historyLoading = true;
  try {
    do {
      state.historyAgain = false;
      await fetchHistory();
    } while (state.historyAgain);
  } finally {
    state.historyLoading = false;
  }
}

function historyState(text) {
  const p = $("history-state");
  p.hidden = !text;
  p.textContent = text || "";
  $("exits").hidden = Boolean(text);
}

async function fetchHistory() {
  let resp;
  try {
    resp = await fetch("/api/history", { headers: authHeaders(), cache: "no-store" });
  } catch (err) {
    historyState("history unavailable (the daemon did not answer)");
    return;
  }
  if (resp.status === 401) {
    showAuth("The token was refused. Enter the daemon's API token.");
    return;
  }
  if (resp.status === 404) {
    historyState("history unavailable (this daemon has no /api/history)");
    drawChart([], "history unavailable");
    return;
  }
  if (!resp.ok) {
    historyState(`history unavailable (HTTP ${resp.status})`);
    return;
  }
  const h = await resp.json();
  renderHistory(h);
}

function renderHistory(h) {
  const closed = h.tranches || [];
  historyState(closed.length ? "" : "No exits yet.");
  const recent = closed.slice(-EXITS_SHOWN).reverse();
  const several = Boolean(state.report && severalVenues(state.report)); // a Venue cell only then
  $("exits").classList.toggle("multi-venue", several);
  $("exits").tBodies[0].replaceChildren(...recent.map((t) => el("tr", { data: { tranche: String(t.id) } },
    el("td", { text: clockTime(t.closed_at), title: new Date(t.closed_at * 1000).toISOString() }),
    el("td", { class: "id", text: `#${t.id}` }),
    ...(several ? [el("td", { class: "venue-col", data: { cell: "venue" }, text: t.venue ?? "-" })] : []),
    el("td", { text: t.symbol }),
    el("td", { class: "side " + String(t.side).toLowerCase(), text: t.side }),
    decCell(t.qty, "num"),
    decCell(t.entry, "num"),
    decCell(t.exit_price, "num"),
    el("td", { class: "reason", text: t.exit_reason ?? "" }),
    el("td", { class: "num", text: duration(t.hold_seconds) }),
    decCell(t.fees, "num muted"),
    decCell(t.net_pnl, pnlClass(t.net_pnl), true))));
  const wins = closed.filter((t) => signOf(t.net_pnl) > 0).length;
  $("history-summary").textContent = closed.length
    ? `${closed.length} · win ${Math.round((wins / closed.length) * 100)}%` : "";
  $("chart-summary").textContent = closed.length
    ? `realized ${signed(decShown(h.realized_pnl)[0])} · fees ${decShown(h.fees)[0]} · net ${signed(decShown(h.net_pnl)[0])}`
    : "";
  drawChart(closed);
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Cumulative net PnL after each exit, as a step line over time (exact sums for the labels).
function drawChart(closed, empty = "no exits yet") {
  const chart = $("chart");
  const W = 600, H = 220, L = 72, R = 8, T = 10, B = 22;
  if (!closed.length) {
    chart.replaceChildren(svg("text", { x: W / 2, y: H / 2, class: "axis", "text-anchor": "middle" }, empty));
    return;
  }
  const points = [];
  let running = "0";
  for (const t of closed) {
    running = decSum([running, t.net_pnl ?? "0"]);
    points.push({ x: t.closed_at, y: Number(running), label: decShown(running)[0] });
  }
  const x0 = Math.min(closed[0].opened_at ?? closed[0].closed_at, points[0].x);
  const x1 = Math.max(points[points.length - 1].x, x0 + 1);
  const ys = [0, ...points.map((p) => p.y)];
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y1 - y0 < 1e-12) { y0 -= 1; y1 += 1; }
  const pad = (y1 - y0) * 0.08;
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => T + (1 - (y - (y0 - pad)) / (y1 - y0 + 2 * pad)) * (H - T - B);
  let d = `M${sx(x0).toFixed(1)},${sy(0).toFixed(1)}`;
  for (const p of points) d += ` H${sx(p.x).toFixed(1)} V${sy(p.y).toFixed(1)}`;
  d += ` H${sx(x1).toFixed(1)}`;
  const zero = sy(0);
  const high = points.reduce((a, b) => (b.y > a.y ? b : a));
  const low = points.reduce((a, b) => (b.y < a.y ? b : a));
  const last = points[points.length - 1];
  const nodes = [
    // the same line twice, clipped above and below zero: gains green, losses red
    svg("defs", {}),
    svg("line", { x1: L, x2: W - R, y1: zero, y2: zero, class: "zero" }),
    svg("text", { x: L - 4, y: zero + 4, class: "axis", "text-anchor": "end" }, "0"),
    svg("text", { x: L, y: H - 6, class: "axis" }, clockTime(x0)),
    svg("text", { x: W - R, y: H - 6, class: "axis", "text-anchor": "end" }, clockTime(x1)),
  ];
  nodes[0].append(svg("clipPath", { id: "pnl-above" }, undefined), svg("clipPath", { id: "pnl-below" }, undefined));
  nodes[0].children[0].append(svg("rect", { x: 0, y: 0, width: W, height: zero }));
  nodes[0].children[1].append(svg("rect", { x: 0, y: zero, width: W, height: H - zero }));
  nodes.push(svg("path", { d, class: "equity pos", "clip-path": "url(#pnl-above)" }));
  nodes.push(svg("path", { d, class: "equity neg", "clip-path": "url(#pnl-below)" }));
  for (const p of [high, low]) { // the extremes on the axis, unless too close to zero or to the last point's label
    if (p !== last && p.y !== 0 && Math.abs(sy(p.y) - zero) > 14) {
      nodes.push(svg("text", { x: L - 4, y: sy(p.y) + 4, class: "axis", "text-anchor": "end" }, p.label));
    }
  }
  for (const p of points) {
    const dot = svg("circle", { cx: sx(p.x), cy: sy(p.y), r: 2.5, class: p.y >= 0 ? "pos" : "neg" });
    dot.append(svg("title", {}, `${clockTime(p.x)}: ${p.label}`));
    nodes.push(dot);
  }
  const above = sy(last.y) > T + 14;
  nodes.push(svg("text", { x: sx(last.x) - 4, y: sy(last.y) + (above ? -6 : 14), class: "axis last", "text-anchor": "end" },
    signed(last.label)));
  chart.replaceChildren(...nodes);
}

// ---------------------------------------------------------------- operator actions, each behind a confirmation

function confirmAction(title, details, warning) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-details").replaceChildren(...details.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  $("confirm-warning").textContent = warning;
  dialog.returnValue = "";
  dialog.showModal();
  $("confirm-cancel").focus();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true }));
}

async function post(path, body, what, button) {
  if (button) {
    button.disabled = true;
    button.dataset.busy = "1";
  }
  try {
    const resp = await fetch(path, {
      method: "POST",
      headers: { ...authHeaders(), "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const answer = await resp.json().catch(() => ({}));
    if (resp.status === 401) showAuth("The token was refused. Enter the daemon's API token.");
    else if (resp.ok) notice(`${what}: done.`, "ok");
    else notice(`${what} refused (HTTP ${resp.status}): ${answer.error ?? "no reason given"}`, "error");
  } catch (err) {
    notice(`${what}: the daemon did not answer (${err.message}).`, "error");
  } finally {
    if (button) {
      delete button.dataset.busy;
      button.disabled = false;
    }
  }
}

function trancheById(id) {
  return state.report?.tranches.find((t) => String(t.id) === String(id));
}

async function onAction(event) {
  const button = event.target.closest("button[data-action]");
  if (!button || button.disabled) return;
  const { action, symbol, side, id, venue } = button.dataset;
  const at = venue ? `?venue=${encodeURIComponent(venue)}` : ""; // several venues: the account addressed
  const where = venue ? ` on ${venue}` : "";
  if (action === "close-tranche") {
    const t = trancheById(id);
    if (!t) return;
    const ok = await confirmAction(`Close tranche #${t.id} at market?`, [
      ["Position", `${t.symbol} ${t.side}`], ["Quantity", decShown(t.qty)[0]], ["Entry", decShown(t.entry)[0]],
      ["Mark", decShown(t.mark)[0] ?? "-"],
      ["Unrealized PnL", signed(decShown(t.unrealized_pnl)[0]) ?? "-"],
    ], "Its TP and SL are cancelled and the quantity is closed now; the position's other tranches stay.");
    if (ok) await post(`/api/tranches/${encodeURIComponent(t.id)}/close`, { symbol: t.symbol }, `Close tranche #${t.id}`, button);
  } else if (action === "close-position") {
    const list = state.report?.tranches.filter((t) => t.symbol === symbol && t.side === side && (!venue || t.venue === venue)) ?? [];
    const ok = await confirmAction(`Close the whole ${symbol} ${side} position${where} at market?`, [
      ["Tranches", list.map((t) => "#" + t.id).join(", ")], ["Quantity", decSum(list.map((t) => t.qty)) ?? "-"],
      ["Unrealized PnL", signed(decShown(decSum(list.map((t) => t.unrealized_pnl)))[0]) ?? "-"],
    ], "Every tranche of this side is closed now.");
    if (ok) await post(`/api/positions/${encodeURIComponent(symbol)}/close`, venue ? { side, venue } : { side }, `Close ${symbol} ${side}${where}`, button);
  } else if (action === "stop") {
    const ok = await confirmAction(`Stop monitoring ${symbol}${where}?`, [["Symbol", `${symbol} (both sides)`]],
      "posmon's TP and SL orders for it are cancelled and the position stays open, unprotected, until you resume.");
    if (ok) await post(`/api/monitor/stop/${encodeURIComponent(symbol)}${at}`, {}, `Stop monitoring ${symbol}${where}`, button);
  } else if (action === "resume") {
    const ok = await confirmAction(`Resume monitoring ${symbol}${where}?`, [["Symbol", symbol]],
      "posmon adopts the open position again and places its TP and SL.");
    if (ok) await post(`/api/monitor/resume/${encodeURIComponent(symbol)}${at}`, {}, `Resume ${symbol}${where}`, button);
  }
}

// ---------------------------------------------------------------- start

function start() {
  if (state.feedAbort) state.feedAbort.abort();
  state.openIds = null;
  runFeed();
}

document.addEventListener("DOMContentLoaded", () => {
  takeTokenFromFragment();
  $("data").addEventListener("click", onAction);
  $("auth-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("auth-token").value.trim());
    $("auth-token").value = "";
    $("auth").hidden = true;
    start();
  });
  $("forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showAuth("Token forgotten. Enter the daemon's API token.");
  });
  window.addEventListener("hashchange", () => {
    if (/token=/.test(location.hash)) {
      takeTokenFromFragment();
      start();
    }
  });
  setInterval(tickHeld, 1000);
  setInterval(() => state.report && loadHistory(), HISTORY_REFRESH_MS); // an exit between two reports is caught too
  start();
});
