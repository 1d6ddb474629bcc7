"use strict";
// The report page: draws the data embedded by healthscore.report.html. Data only ever becomes
// text nodes and attribute values, never markup. The account table renders just the rows in view,
// so 20,000 accounts filter and scroll as fast as 200.
(() => {
  const D = JSON.parse(document.getElementById("report-data").textContent);
  const A = D.accounts, X = D.details, TIERS = D.tiers, N = A.id.length;
  const PALETTE = { green: "#2e8b57", yellow: "#e3b100", red: "#d32f2f" };
  const tierColor = (t) => PALETTE[TIERS[t].color] || TIERS[t].color;
  const indexOf = new Map(A.id.map((id, i) => [id, i]));
  const $ = (id) => document.getElementById(id);

  // --- DOM helpers --------------------------------------------------------------------------
  function fill(node, props, children) {
    for (const [key, value] of Object.entries(props || {})) {
      if (value == null || value === false) continue;
      if (key === "class") node.setAttribute("class", value);
      else if (key === "style") Object.assign(node.style, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child == null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const el = (tag, props, ...children) => fill(document.createElement(tag), props, children);
  const sv = (tag, props, ...children) => fill(document.createElementNS("http://www.w3.org/2000/svg", tag), props, children);

  // --- formats ------------------------------------------------------------------------------
  const whole = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const two = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });
  const money = (v) => (v == null ? "-" : "$" + whole.format(v));
  const share = (v, digits = 0) => (v == null ? "-" : (100 * v).toFixed(digits) + "%");
  const one = (v) => (v == null ? "-" : v.toFixed(1));
  const horizon = () => (D.scale.horizon_days ? `${D.scale.horizon_days} days` : "the label horizon");
  const signed = (v, digits = 1) => (v > 0 ? "+" : "") + v.toFixed(digits);
  const words = (code) => (code || "other").replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());

  function metricValue(metric, value) {
    if (value == null) return metric.missing || "none on record";
    if (metric.kind === "categorical") return String(value);
    switch (metric.format) {
      case "percent": return (100 * value).toFixed(0) + "%";
      case "currency": return money(value);
      case "days": return whole.format(value) + (Math.round(value) === 1 ? " day" : " days");
      case "hours": return value.toFixed(1) + " h";
      case "integer": case "score": return whole.format(value);
      default: return two.format(value);
    }
  }

  /** Share (0-100) of the training accounts below `value`, ties split: the model's reference quantiles. */
  function percentile(metric, value) {
    const q = metric.quantiles;
    if (value == null || typeof value !== "number" || !q.length) return null;
    let below = 0, atOrBelow = 0;
    for (const x of q) { if (x < value) below++; if (x <= value) atOrBelow++; }
    return (100 * (below + atOrBelow)) / 2 / q.length;
  }

  const tierBadge = (t) => el("span", { class: "tier" },
    el("span", { class: "swatch", style: { background: tierColor(t) }, "aria-hidden": "true" }), TIERS[t].label);
  const tierOf = (code) => TIERS.findIndex((t) => t.code === code);

  function trend(change) {
    if (change == null) {
      return D.period.start ? el("span", { class: "flat", title: `not scored on ${D.period.start}` }, "new")
        : el("span", { class: "flat", title: "no earlier run in the score history" }, "-");
    }
    const title = `${signed(change)} points since ${D.period.start}`;
    if (Math.abs(change) < 0.5) return el("span", { class: "flat", title }, "→ 0");
    return change > 0 ? el("span", { class: "up", title }, "▲ " + signed(change)) : el("span", { class: "down", title }, "▼ " + signed(change));
  }

  // --- header, notes, footer ----------------------------------------------------------------
  function renderHeader() {
    const m = D.model;
    $("subtitle").append(`${whole.format(N)} accounts scored on ${D.as_of} by ${m.name} version ${m.version} · `
      + `scores file ${D.source} · report made ${D.generated_at.replace("T", " ")}`);
    $("notes").append(...D.notes.map((text) => el("p", { class: "note" }, text)));
  }

  function renderFooter() {
    const m = D.model, metrics = m.test_metrics || {}, trained = m.trained_on || {};
    const range = (key) => (trained[key] ? `${trained[key][0]} to ${trained[key][1]}` : "not recorded");
    const number = (v, digits) => (v == null ? "not recorded" : v.toFixed(digits));
    const facts = [
      ["Model", `${m.name} version ${m.version}` + (m.run_id ? ` (MLflow run ${m.run_id})` : "")],
      ["Trained on", `every labelled observation date, ${range("shipped")}; the test figures are of the same settings `
        + `fitted before ${range("test")} and scored on it`],
      ["Test ROC-AUC", `${number(metrics.roc_auc, 3)} (how well it ranks churners above the others; 0.5 is chance)`],
      ["Calibration (ECE)", `${number(metrics.ece, 4)} (mean gap between the predicted and the observed churn rate)`],
      ["Test PR-AUC / Brier", `${number(metrics.pr_auc, 3)} / ${number(metrics.brier, 4)}`],
      ["Tiers", `${TIERS[0].label} from ${D.cutoffs.healthy_from}, ${TIERS[2].label} below `
        + `${D.cutoffs.unhealthy_below}, ${TIERS[1].label} between`],
      ["Health score", `0-100, linear in the model's log-odds: ${number(D.scale.points_to_double_odds, 1)} points fewer double the odds `
        + `of churning within ${horizon()}; revenue at risk = MRR × churn probability`],
      ["Score → churn probability", D.scale.table.map(([s, p]) => `${s}: ${share(p, 1)}`).join(" · ")],
    ];
    $("model-facts").append(el("h2", {}, "Model facts"),
      el("dl", {}, facts.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
  }

  // --- how good is this score: the published backtest ----------------------------------------
  function renderQuality() {
    const B = D.model.backtest || [], body = $("quality-body");
    if (!B.length) {
      body.append(el("p", { class: "muted" }, "No backtest for this model: it was trained on a table without observation "
        + "dates (or before backtests were published), so there is no earlier date to test it on."));
      return;
    }
    const code = (t) => TIERS[t].code;
    body.append(el("p", { class: "muted" }, `Each of the latest ${B.length} labelled dates was scored by a model trained and `
      + "calibrated only on data whose churn outcome was known before that date, then compared with who actually churned. "
      + "This is how the score would have done for you, month by month."));
    const cols = [
      ["as_of", "Date", (v) => v], ["rows", "Accounts", (v) => whole.format(v)],
      ["roc_auc", "ROC-AUC", (v) => (v == null ? "-" : v.toFixed(3))],
      ["mean_predicted", "Predicted churn", (v) => share(v, 1)], ["churn_rate", "Observed churn", (v) => share(v, 1)],
      ...TIERS.map((t, i) => [`churn_rate_${code(i)}`, `${t.label}: churned`, (v) => share(v, 1)]),
      ["unhealthy_recall", `Churners caught by ${TIERS[2].label}`, (v) => share(v, 0)],
      ["tier_flip_rate", "Changed tier", (v) => share(v, 0)],
    ];
    body.append(el("div", { class: "quality" },
      el("table", { class: "backtest" },
        el("thead", {}, el("tr", {}, cols.map(([, label], i) => el("th", { class: i ? "num" : "" }, label)))),
        el("tbody", {}, B.map((row) => el("tr", {}, cols.map(([key, , fmt], i) => el("td", { class: i ? "num" : "" }, fmt(row[key]))))))),
      backtestChart(B)));
  }

  /** Observed churn per tier on each backtest date: bars in the tier colours, one group per date. */
  function backtestChart(B) {
    const W = 360, H = 180, left = 40, bottom = 24, top = 10, group = (W - left) / B.length, bar = Math.min(18, (group - 12) / 3);
    const peak = niceMax(Math.max(...B.flatMap((r) => TIERS.map((_, i) => r[`churn_rate_${TIERS[i].code}`] || 0))));
    const y = (v) => top + (H - top - bottom) * (1 - v / peak);
    const svg = sv("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img",
      "aria-label": "Observed churn rate by tier on each backtest date" });
    for (const v of [0, peak / 2, peak]) {
      svg.append(sv("line", { x1: left, x2: W, y1: y(v), y2: y(v), stroke: "#d7dce5" }),
        sv("text", { x: left - 4, y: y(v) + 4, "text-anchor": "end", "font-size": 10 }, share(v)));
    }
    B.forEach((row, g) => {
      const x0 = left + g * group + (group - 3 * bar) / 2;
      TIERS.forEach((t, i) => {
        const v = row[`churn_rate_${t.code}`] || 0;
        svg.append(sv("rect", { x: x0 + i * bar, y: y(v), width: bar - 2, height: y(0) - y(v), fill: tierColor(i) },
          sv("title", {}, `${row.as_of} · ${t.label}: ${share(v, 1)} churned`)));
      });
      svg.append(sv("text", { x: left + (g + 0.5) * group, y: H - 6, "text-anchor": "middle", "font-size": 10 }, row.as_of));
    });
    return svg;
  }

  // --- portfolio ----------------------------------------------------------------------------
  function renderPortfolio() {
    const P = D.portfolio, K = D.kpis;
    const total = (key) => TIERS.reduce((sum, t) => sum + P[t.code][key], 0);
    const totals = { accounts: total("accounts"), mrr: total("mrr"), revenue_at_risk: total("revenue_at_risk") };
    const part = (v, key) => (totals[key] ? ` (${share(v / totals[key])})` : "");
    $("tier-cards").append(...TIERS.map((t, i) => {
      const p = P[t.code];
      return el("div", { class: "card", style: { borderTopColor: tierColor(i) }, "data-tier": t.code },
        el("h3", {}, tierBadge(i)),
        el("dl", {},
          el("dt", {}, "Accounts"), el("dd", {}, whole.format(p.accounts) + part(p.accounts, "accounts")),
          el("dt", {}, "MRR"), el("dd", {}, money(p.mrr) + part(p.mrr, "mrr")),
          el("dt", {}, "Revenue at risk"), el("dd", {}, money(p.revenue_at_risk) + part(p.revenue_at_risk, "revenue_at_risk"))));
    }));

    const since = D.period.start ? `${D.period.start} → ${D.period.end}` : "";
    const needs = D.period.start ? "" : "needs a score history with an earlier run (--history)";
    const kpi = (key, label, value, sub) => el("div", { class: "kpi" + (K[key] == null ? " missing" : ""), "data-kpi": key },
      el("div", { class: "label" }, label),
      el("div", { class: "value" }, K[key] == null ? "not available" : value),
      el("div", { class: "sub" }, K[key] == null ? needs : sub));
    $("kpis").append(
      kpi("accounts", "Accounts", whole.format(K.accounts), `scored on ${D.as_of}`),
      kpi("mrr", "MRR", money(K.mrr), K.mrr_start == null ? "monthly recurring revenue" : `${money(K.mrr_start)} at the previous run`),
      kpi("arpa", "ARPA", money(K.arpa), "MRR / accounts"),
      kpi("revenue_at_risk", "Revenue at risk", money(K.revenue_at_risk),
        K.mrr ? `${share(K.revenue_at_risk / K.mrr, 1)} of MRR: Σ MRR × churn probability` : "Σ MRR × churn probability"),
      kpi("churn_rate", "Churn rate", share(K.churn_rate, 1), `${whole.format(K.lost_accounts)} of ${whole.format(K.accounts_start)} accounts lost, ${since}`),
      kpi("crr", "Customer retention (CRR)", K.crr == null ? "" : K.crr.toFixed(1) + "%",
        `((E - N) / S) × 100: E ${whole.format(K.accounts)} at the end, N ${whole.format(K.new_accounts)} new, `
          + `S ${whole.format(K.accounts_start)} at the start`),
      kpi("expansion_mrr", "Expansion MRR", money(K.expansion_mrr), `MRR increases of retained accounts, ${since}`));
    $("histogram").append(histogram());
  }

  /** Bars from the histogram's low end to 100, stacked by tier; the few accounts far below, one bar on the left. */
  function histogram() {
    const H = D.histogram, bins = H.counts[TIERS[0].code].length;
    const below = TIERS.reduce((sum, t) => sum + H.below[t.code], 0), gap = below ? 1.5 * H.width : 0;
    const W = 760, Ht = 240, L = 44, R = 12, T = 12, B = 34, plotW = W - L - R, plotH = Ht - T - B;
    const stacks = Array.from({ length: bins }, (_, b) => TIERS.reduce((sum, t) => sum + H.counts[t.code][b], 0));
    const top = niceMax(Math.max(1, below, ...stacks));
    const x = (score) => L + (plotW * (score - H.low + gap)) / (100 - H.low + gap), y = (n) => T + plotH - (plotH * n) / top;
    const svg = sv("svg", { viewBox: `0 0 ${W} ${Ht}`, width: "100%", role: "img", id: "histogram-chart",
      "aria-label": `Histogram of health scores from ${H.low} to 100, bars stacked by tier` });
    for (let k = 0; k <= 4; k++) {
      const n = (top * k) / 4;
      svg.append(sv("line", { class: "grid", x1: L, x2: W - R, y1: y(n), y2: y(n) }),
        sv("text", { x: L - 6, y: y(n) + 4, "text-anchor": "end" }, whole.format(n)));
    }
    const stack = (left, counts, range) => {
      let base = 0;
      TIERS.forEach((t, i) => {
        const n = counts[t.code];
        if (!n) return;
        svg.append(sv("rect", { x: x(left) + 0.5, width: Math.max(1, x(left + H.width) - x(left) - 1), y: y(base + n),
          height: y(base) - y(base + n), fill: tierColor(i) }, sv("title", {}, `${range}: ${n} ${t.label}`)));
        base += n;
      });
    };
    for (let b = 0; b < bins; b++) {
      const left = H.low + b * H.width;
      stack(left, Object.fromEntries(TIERS.map((t) => [t.code, H.counts[t.code][b]])), `${two.format(left)}-${two.format(left + H.width)}`);
    }
    if (below) {
      stack(H.low - gap, H.below, `below ${H.low}`);
      svg.append(sv("text", { x: x(H.low - gap + H.width / 2), y: Ht - B + 16, "text-anchor": "middle" }, `<${H.low}`));
    }
    svg.append(sv("line", { class: "axis", x1: L, x2: W - R, y1: y(0), y2: y(0) }));
    for (const s of ticks(H.low, 100).filter((s) => !(below && s === H.low))) svg.append(sv("text", { x: x(s), y: Ht - B + 16, "text-anchor": "middle" }, s));
    svg.append(sv("text", { x: L + plotW / 2, y: Ht - 4, "text-anchor": "middle" }, "health score"));
    const cuts = [[D.cutoffs.unhealthy_below, `${TIERS[2].label} < ${D.cutoffs.unhealthy_below}`, 0],
      [D.cutoffs.healthy_from, `${TIERS[0].label} ≥ ${D.cutoffs.healthy_from}`, 14]];
    for (const [at, label, dy] of cuts) {
      svg.append(sv("line", { class: "cut", x1: x(at), x2: x(at), y1: T, y2: y(0) }),
        sv("text", { x: x(at) - 4, y: T + 10 + dy, "text-anchor": "end" }, label));
    }
    const legend = el("div", { class: "legend" }, TIERS.map((t, i) =>
      el("span", {}, tierBadge(i), ` ${whole.format(D.portfolio[t.code].accounts)} accounts`)));
    return el("div", {}, svg, legend);
  }

  function niceMax(v) {
    const step = 10 ** Math.floor(Math.log10(v));
    return [1, 2, 2.5, 5, 10].map((m) => m * step).find((m) => m >= v);
  }

  // --- movement -----------------------------------------------------------------------------
  function renderMovement() {
    const M = D.movement, body = $("movement-body");
    if (!M) {
      body.append(el("p", { class: "muted" }, "No earlier run to compare with: see the notes at the top."));
      return;
    }
    const C = M.counts;
    body.append(el("p", {}, `From ${M.from} to ${M.to}: ${C.tier_down} accounts moved down a tier and ${C.tier_up} up; `
      + `${C.drops} lost ${M.min_points} points or more and ${C.rises} gained as many.`));
    const lists = [["tier_down", "Moved down a tier"], ["tier_up", "Moved up a tier"], ["drops", `Biggest drops (${M.min_points}+ points)`]];
    const tabs = el("div", { class: "tabs", role: "tablist" }), panels = [];
    lists.forEach(([key, title], k) => {
      const rows = M[key], panel = el("div", { class: "panel", role: "tabpanel", id: `movement-${key}`, hidden: k > 0 },
        rows.length ? movementTable(rows) : el("p", { class: "muted" }, "None."),
        C[key] > rows.length ? el("p", { class: "muted" }, `The ${rows.length} biggest moves of ${C[key]}; sort the table by trend for all.`) : null);
      const tab = el("button", { type: "button", role: "tab", "aria-selected": String(k === 0), "aria-controls": panel.id, "data-key": key,
        onclick: () => {
          for (const other of tabs.children) other.setAttribute("aria-selected", String(other === tab));
          panels.forEach((p) => { p.hidden = p !== panel; });
        } }, `${title} (${whole.format(C[key])})`);
      tabs.append(tab);
      panels.push(panel);
    });
    body.append(tabs, ...panels);
  }

  function movementTable(rows) {
    return el("table", { class: "mini" },
      el("thead", {}, el("tr", {}, el("th", {}, "Account"), el("th", { class: "num" }, "Score"), el("th", {}, "Tier"),
        el("th", {}, "Why (the metrics that moved it most)"))),
      el("tbody", {}, rows.map((r) => el("tr", {},
        el("td", {}, accountLink(r.id, r.name)),
        el("td", { class: "num" }, `${one(r.from)} → ${one(r.to)} `, el("span", { class: r.delta < 0 ? "down" : "up" }, `(${signed(r.delta)})`)),
        el("td", {}, tierBadge(tierOf(r.tier_from)), " → ", tierBadge(tierOf(r.tier_to)),
          r.model_changed ? el("div", { class: "muted" }, "new model version") : null),
        el("td", {}, r.why || "-")))));
  }

  function accountLink(id, name) {
    const i = indexOf.get(id);
    const label = [name || id, name ? el("div", { class: "muted" }, id) : null];
    return i == null ? el("span", {}, label) : el("button", { type: "button", class: "linkish", onclick: () => openDetail(i) }, label);
  }

  // --- account table ------------------------------------------------------------------------
  const owners = A.csm_owner.values, segments = A.segment.values;
  const lower = (i) => (A.name[i] || A.id[i]).toLowerCase();
  const topReason = (i) => (X.reasons[i].length ? X.reasons[i][0][0] : "");
  const COLUMNS = [
    { key: "account", label: "Account", width: "22%", sort: lower, cell: (i) => [A.name[i] || A.id[i], " ", el("span", { class: "muted" }, A.id[i])] },
    { key: "owner", label: "CSM owner", width: "12%", sort: (i) => owners[A.csm_owner.index[i]].toLowerCase(), cell: (i) => owners[A.csm_owner.index[i]] || "-" },
    { key: "score", label: "Score", width: "7%", num: true, sort: (i) => A.score[i], cell: (i) => one(A.score[i]) },
    { key: "tier", label: "Tier", width: "10%", sort: (i) => -A.tier[i], cell: (i) => tierBadge(A.tier[i]) },
    { key: "csm_tier", label: "CSM says", width: "10%", sort: (i) => (A.csm_tier[i] == null ? 9 : -A.csm_tier[i]), cell: csmTier },
    { key: "trend", label: "Trend", width: "8%", sort: (i) => A.change[i], cell: (i) => trend(A.change[i]) },
    { key: "mrr", label: "MRR", width: "8%", num: true, sort: (i) => A.mrr[i], cell: (i) => money(A.mrr[i]) },
    { key: "revenue_at_risk", label: "Revenue at risk", width: "10%", num: true, sort: (i) => A.revenue_at_risk[i], cell: (i) => money(A.revenue_at_risk[i]) },
    { key: "reason", label: "Top reason", width: "auto", sort: (i) => topReason(i).toLowerCase(), cell: (i) => topReason(i) || "-" },
  ];
  /** The CSM's override beside the model's tier, never in its place; an expired one is marked. */
  function csmTier(i) {
    if (A.csm_tier[i] == null) return "-";
    return el("span", { class: A.csm_expired[i] ? "muted" : null, "data-csm": TIERS[A.csm_tier[i]].code },
      tierBadge(A.csm_tier[i]), A.csm_expired[i] ? " (expired)" : "");
  }
  const haystack = A.id.map((id, i) => [id, A.name[i], owners[A.csm_owner.index[i]], topReason(i)].join(" ").toLowerCase());
  const state = { sort: "revenue_at_risk", descending: true, view: [], rowHeight: 35 };
  const wrap = $("table-wrap"), tbody = $("table-body");

  function setupTable() {
    $("table-cols").append(...COLUMNS.map((c) => el("col", { style: { width: c.width } })));
    $("table-head").append(...COLUMNS.map((c) => el("th", { class: c.num ? "num" : null, scope: "col", "data-key": c.key },
      el("button", { type: "button", onclick: () => sortBy(c.key) }, c.label))));
    const counts = TIERS.map((_, t) => A.tier.filter((x) => x === t).length);
    $("filter-tier").append(el("option", { value: "" }, "All tiers"),
      ...TIERS.map((t, i) => el("option", { value: t.code }, `${t.label} (${whole.format(counts[i])})`)));
    const options = (values, all) => [el("option", { value: "" }, all),
      ...values.map((v, i) => el("option", { value: String(i) }, v || "(none)"))];
    $("filter-segment").append(...options(segments, "All segments"));
    $("filter-owner").append(...options(owners, "All owners"));
    for (const id of ["filter-tier", "filter-segment", "filter-owner"]) $(id).addEventListener("change", refresh);
    $("filter-text").addEventListener("input", refresh);
    $("filter-reset").addEventListener("click", () => {
      for (const id of ["filter-tier", "filter-segment", "filter-owner", "filter-text"]) $(id).value = "";
      refresh();
    });
    let pending = false;
    wrap.addEventListener("scroll", () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; renderRows(); });
    });
    tbody.addEventListener("click", (e) => {
      const row = e.target.closest("tr.row");
      if (row) openDetail(Number(row.dataset.i));
    });
    tbody.addEventListener("keydown", (e) => {
      const row = e.target.closest("tr.row");
      if (row && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); openDetail(Number(row.dataset.i)); }
    });
    refresh();
  }

  function sortBy(key) {
    state.descending = state.sort === key ? !state.descending : !["account", "owner", "reason", "tier"].includes(key);
    state.sort = key;
    sortView();
    renderRows();
  }

  function sortView() {
    const column = COLUMNS.find((c) => c.key === state.sort), keys = new Map();
    for (const i of state.view) keys.set(i, column.sort(i));
    const sign = state.descending ? -1 : 1;
    state.view.sort((a, b) => {
      const ka = keys.get(a), kb = keys.get(b);
      if (ka == null || kb == null) return ka == null ? (kb == null ? a - b : 1) : -1; // blanks last
      return ka < kb ? -sign : ka > kb ? sign : a - b;
    });
    for (const th of $("table-head").children) {
      th.setAttribute("aria-sort", th.dataset.key === state.sort ? (state.descending ? "descending" : "ascending") : "none");
    }
  }

  function refresh() {
    const tier = tierOf($("filter-tier").value), segment = $("filter-segment").value, owner = $("filter-owner").value;
    const text = $("filter-text").value.trim().toLowerCase();
    const seg = segment === "" ? -1 : Number(segment), own = owner === "" ? -1 : Number(owner);
    const view = [];
    for (let i = 0; i < N; i++) {
      if (tier >= 0 && A.tier[i] !== tier) continue;
      if (seg >= 0 && A.segment.index[i] !== seg) continue;
      if (own >= 0 && A.csm_owner.index[i] !== own) continue;
      if (text && !haystack[i].includes(text)) continue;
      view.push(i);
    }
    state.view = view;
    sortView();
    const count = $("row-count");
    count.dataset.count = String(view.length);
    count.textContent = `Showing ${whole.format(view.length)} of ${whole.format(N)} accounts. Click a row for its details; click a header to sort.`;
    wrap.scrollTop = 0;
    renderRows();
  }

  function renderRows() {
    const view = state.view, h = state.rowHeight, head = $("table-head").getBoundingClientRect().height;
    const first = Math.max(0, Math.floor((wrap.scrollTop - head) / h) - 10);
    const last = Math.min(view.length, Math.ceil((wrap.scrollTop + wrap.clientHeight) / h) + 10);
    const spacer = (px) => el("tr", { "aria-hidden": "true" }, el("td", { colspan: COLUMNS.length, style: { height: px + "px", padding: "0", border: "0" } }));
    const rows = [];
    for (let k = first; k < last; k++) {
      const i = view[k];
      rows.push(el("tr", { class: "row", tabindex: "0", "data-i": i, "data-id": A.id[i] },
        COLUMNS.map((c) => {
          const content = c.cell(i);
          return el("td", { class: c.num ? "num" : null, title: typeof content === "string" ? content : null }, content);
        })));
    }
    tbody.replaceChildren(spacer(first * h), ...rows, spacer((view.length - last) * h));
    if (rows.length) state.rowHeight = rows[0].getBoundingClientRect().height || h;
  }

  // --- account detail -----------------------------------------------------------------------
  let opener = null;

  function openDetail(i) {
    opener = document.activeElement;
    const metricsOf = D.metrics, tier = A.tier[i];
    const reasons = X.reasons[i], strengths = X.strengths[i];
    const actions = []; // [driver, action, the reasons behind it]
    if (TIERS[tier].code === "healthy") actions.push([`${TIERS[tier].label} account`, D.playbooks.high_health, []]);
    for (const [text, , family] of reasons) {
      const known = actions.find((a) => a[0] === words(family));
      if (known) known[2].push(text);
      else actions.push([words(family), D.playbooks[family] || D.playbooks.default, [text]]);
    }
    if (!actions.length) actions.push(["No reason pulls the score down", D.playbooks.default, []]);
    const fact = (label, value, key, sub) => el("div", { class: "kpi", "data-fact": key }, el("div", { class: "label" }, label),
      el("div", { class: "value" }, value), sub ? el("div", { class: "sub" }, sub) : null);
    const body = $("detail-body");
    body.replaceChildren(
      el("h2", { id: "detail-title" }, A.name[i] || A.id[i]),
      el("p", { class: "muted" }, [A.id[i], owners[A.csm_owner.index[i]] && `owner ${owners[A.csm_owner.index[i]]}`,
        segments[A.segment.index[i]] && `segment ${segments[A.segment.index[i]]}`,
        A.plan.values[A.plan.index[i]] && `plan ${A.plan.values[A.plan.index[i]]}`].filter(Boolean).join(" · ")),
      el("div", { class: "facts" },
        fact("Health score", el("span", { class: "big", id: "detail-score" }, one(A.score[i])), "score"),
        fact("Tier", tierBadge(tier), "tier"),
        fact("Percentile", A.percentile[i] == null ? "-" : A.percentile[i].toFixed(0), "percentile",
          A.percentile[i] == null ? null : `healthier than ${A.percentile[i].toFixed(0)}% of the training accounts`),
        fact(`Churn probability (${horizon()})`, share(A.probability[i], 1), "probability"),
        fact("MRR", money(A.mrr[i]), "mrr"),
        fact("Revenue at risk", money(A.revenue_at_risk[i]), "revenue_at_risk"),
        fact("Trend", trend(A.change[i]), "trend")),
      el("div", { class: "panel" }, el("h3", {}, "Suggested next actions"),
        el("ol", { class: "actions", id: "detail-actions" }, actions.map(([driver, action, because]) => el("li", {},
          el("strong", {}, driver), ": ", action, because.length ? el("div", { class: "muted" }, "because of: " + because.join("; ")) : null)))),
      el("div", { class: "panel" },
        el("h3", {}, "What pulls the score down"),
        reasons.length ? el("ol", { class: "reasons", id: "detail-reasons" }, reasons.map(([text]) => el("li", {}, text)))
          : el("p", { class: "muted", id: "detail-reasons" }, "Nothing: every metric holds the score up or is neutral."),
        el("h3", {}, "What holds it up"),
        strengths.length ? el("ol", { class: "reasons" }, strengths.map(([text]) => el("li", {}, text)))
          : el("p", { class: "muted" }, "Nothing: every metric pulls the score down or is neutral.")),
      el("div", { class: "panel" }, el("h3", {}, "From the baseline to the score"), waterfall(i)),
      el("div", { class: "panel" }, el("h3", {}, "Score history"), historyChart(i)),
      el("div", { class: "panel" }, el("h3", {}, "Every metric"),
        el("p", { class: "muted" }, "Percentile: the share of the model's training accounts with a lower value."),
        el("table", { class: "mini", id: "detail-metrics" },
          el("thead", {}, el("tr", {}, el("th", {}, "Metric"), el("th", {}, "Value"), el("th", { class: "num" }, "Percentile"), el("th", { class: "num" }, "Points"))),
          el("tbody", {}, byImpact(i).map((j) => {
            const m = metricsOf[j], value = X.values[i][j], points = X.points[i][j] || 0;
            const pct = percentile(m, value), common = m.kind === "categorical" && value != null ? m.categories[value] : null;
            return el("tr", {}, el("td", {}, m.label), el("td", {}, metricValue(m, value)),
              el("td", { class: "num" }, pct != null ? pct.toFixed(0) : common != null ? `${share(common)} share` : "-"),
              el("td", { class: "num " + (points < 0 ? "down" : points > 0 ? "up" : "flat") }, signed(points, 2)));
          })))));
    $("backdrop").hidden = false;
    $("detail").hidden = false;
    $("detail").scrollTop = 0;
    $("detail-close").focus();
  }

  function closeDetail() {
    $("detail").hidden = true;
    $("backdrop").hidden = true;
    if (opener && opener.isConnected) opener.focus();
  }

  const byImpact = (i) => D.metrics.map((_, j) => j).sort((a, b) => Math.abs(X.points[i][b] || 0) - Math.abs(X.points[i][a] || 0) || a - b);

  /** Baseline, then every metric's points biggest first (the small ones as one step), then the score. */
  function waterfall(i) {
    const points = X.points[i], baseline = X.baseline[i], score = A.score[i];
    const order = byImpact(i), big = order.filter((j) => Math.abs(points[j] || 0) >= 0.5).slice(0, 12);
    const rest = order.length - big.length, restPoints = score - baseline - big.reduce((sum, j) => sum + points[j], 0);
    const steps = [{ label: "Baseline (the average account)", total: baseline },
      ...big.map((j) => ({ label: D.metrics[j].label, delta: points[j] })),
      ...(rest ? [{ label: `${rest} other metrics, each under 0.5 points`, delta: restPoints }] : []),
      { label: `Health score (${TIERS[A.tier[i]].label})`, total: score }];
    let running = 0;
    for (const s of steps) {
      s.from = s.total != null ? null : running;
      running = s.total != null ? s.total : running + s.delta;
      s.to = running;
    }
    const ends = steps.flatMap((s) => (s.from == null ? [s.to] : [s.from, s.to]));
    const pad = Math.max(1, (Math.max(...ends) - Math.min(...ends)) * 0.1);
    const lo = Math.max(0, Math.floor(Math.min(...ends) - pad)), hi = Math.min(100, Math.ceil(Math.max(...ends) + pad));
    const W = 680, L = 250, R = 56, rowH = 22, T = 4, Ht = T + rowH * steps.length + 24;
    const x = (v) => L + ((W - L - R) * (Math.min(hi, Math.max(lo, v)) - lo)) / (hi - lo || 1);
    const svg = sv("svg", { viewBox: `0 0 ${W} ${Ht}`, width: "100%", role: "img", id: "detail-waterfall",
      "aria-label": `Waterfall from the baseline ${one(baseline)} to the score ${one(score)}` });
    steps.forEach((s, k) => {
      const y = T + k * rowH, label = s.label.length > 40 ? s.label.slice(0, 39) + "…" : s.label;
      const [a, b] = s.from == null ? [lo, s.to] : [Math.min(s.from, s.to), Math.max(s.from, s.to)];
      const fill = s.from == null ? (k === 0 ? "#8a94a6" : tierColor(A.tier[i])) : s.delta < 0 ? "#d32f2f" : "#2e8b57";
      svg.append(
        sv("text", { x: L - 8, y: y + 15, "text-anchor": "end" }, label, sv("title", {}, s.label)),
        sv("rect", { x: x(a), y: y + 3, width: Math.max(1.5, x(b) - x(a)), height: rowH - 6, fill }),
        sv("text", { x: x(b) + 4, y: y + 15 }, s.from == null ? one(s.to) : signed(s.delta, 1)));
      if (k < steps.length - 1) svg.append(sv("line", { class: "grid", x1: x(s.to), x2: x(s.to), y1: y + rowH - 3, y2: y + rowH + 3 }));
    });
    const axisY = T + rowH * steps.length + 4;
    svg.append(sv("line", { class: "axis", x1: x(lo), x2: x(hi), y1: axisY, y2: axisY }));
    for (const v of ticks(lo, hi)) svg.append(sv("text", { x: x(v), y: axisY + 14, "text-anchor": "middle" }, v));
    return svg;
  }

  function ticks(lo, hi) {
    const step = [1, 2, 5, 10, 20, 25, 50].find((s) => (hi - lo) / s <= 6) || 50;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) out.push(v);
    return out;
  }

  function historyChart(i) {
    const dates = X.history_dates, points = X.history[i];
    if (!points.length) return el("p", { class: "muted" }, dates.length ? "Not in the score history." : "No score history: pass --history.");
    const scores = points.map((p) => p[1]), C = D.cutoffs;
    const lo = Math.max(0, Math.floor((Math.min(...scores, C.unhealthy_below) - 5) / 5) * 5), hi = 100;
    const W = 680, L = 40, R = 90, T = 10, B = 30, Ht = 190;
    const x = (k) => (dates.length === 1 ? L + (W - L - R) / 2 : L + ((W - L - R) * k) / (dates.length - 1));
    const y = (v) => T + ((Ht - T - B) * (hi - Math.max(lo, v))) / (hi - lo);
    const svg = sv("svg", { viewBox: `0 0 ${W} ${Ht}`, width: "100%", role: "img", id: "detail-history",
      "aria-label": "Health score at each scoring run, on the bands of the tiers" });
    const bands = [[0, hi, C.healthy_from], [1, C.healthy_from, C.unhealthy_below], [2, C.unhealthy_below, lo]];
    for (const [t, top, bottom] of bands) {
      if (top <= lo) continue;
      svg.append(sv("rect", { x: L, width: W - L - R, y: y(top), height: Math.max(0, y(bottom) - y(top)), fill: tierColor(t), "fill-opacity": 0.12 }),
        sv("text", { x: W - R + 6, y: (y(top) + y(Math.max(bottom, lo))) / 2 + 4 }, TIERS[t].label));
    }
    for (const v of ticks(lo, hi)) svg.append(sv("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, v));
    svg.append(sv("polyline", { points: points.map((p) => `${x(p[0])},${y(p[1])}`).join(" "), fill: "none", stroke: "#1d2433", "stroke-width": 1.5 }));
    const every = Math.ceil(dates.length / 8);
    dates.forEach((d, k) => { if (k % every === 0 || k === dates.length - 1) svg.append(sv("text", { x: x(k), y: Ht - 10, "text-anchor": "middle" }, d)); });
    // a new model is a change of scale, not of behaviour: mark where one took over
    points.forEach(([k, , , model], i) => {
      if (i === 0 || model === points[i - 1][3]) return;
      svg.append(sv("line", { class: "model-change", x1: x(k) - 6, x2: x(k) - 6, y1: T, y2: y(lo), stroke: "#7a3fb0", "stroke-dasharray": "4 3" },
        sv("title", {}, `${dates[k]}: scored by ${model} (before: ${points[i - 1][3]})`)),
      sv("text", { x: x(k) - 8, y: T + 10, "text-anchor": "end", fill: "#7a3fb0" }, `new model: ${model}`));
    });
    for (const [k, value, t, model] of points) {
      const name = t == null ? "" : ` (${TIERS[t].label})`;
      svg.append(sv("circle", { cx: x(k), cy: y(value), r: 4, fill: t == null ? "#5b6475" : tierColor(t), stroke: "#1d2433" },
        sv("title", {}, `${dates[k]}: ${one(value)}${name}, ${model}`)),
      sv("text", { x: x(k), y: y(value) - 8, "text-anchor": "middle" }, one(value)));
    }
    return svg;
  }

  // --- forecast -----------------------------------------------------------------------------
  function renderForecast() {
    const F = D.forecast;
    if (!F) return;
    $("forecast").hidden = false;
    const cover = `churned MRR inside its 80% interval on ${share(F.coverage80)} of ${F.backtest.length} past dates (95%: ${share(F.coverage95)})`;
    $("forecast-body").append(
      el("p", { class: "muted" }, `From ${F.as_of}: expected retained MRR of today's ${money(F.mrr_start)} (no expansion, no new accounts), `
        + `with its 80% and 95% intervals. Backtest: ${cover}.`),
      retainedChart(F),
      el("table", { class: "small", id: "forecast-quarters" },
        el("thead", {}, el("tr", {}, ["Quarter", "Expected churned MRR", "80% interval", "GRR"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, F.quarters.map((q) => el("tr", {}, el("td", {}, q.period), el("td", { class: "num" }, money(q.churned)),
          el("td", { class: "num" }, `${money(q.low80)} - ${money(q.high80)}`), el("td", { class: "num" }, share(q.grr, 1)))))),
      el("h3", {}, "Biggest renewals at risk in the next 90 days"),
      el("table", { class: "small", id: "forecast-renewals" },
        el("thead", {}, el("tr", {}, ["Account", "Renewal", "MRR", "Churn before renewal", "Why"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, F.renewals_at_risk.map((r) => el("tr", {},
          el("td", {}, accountLink(r.id, r.name)), el("td", {}, r.renewal),
          el("td", { class: "num" }, money(r.mrr)), el("td", { class: "num" }, share(r.probability, 1)),
          el("td", {}, r.reasons.join("; ") || "-"))))),
      el("h3", {}, "Backtest: the 3-month forecast made at each past date against what happened"),
      el("table", { class: "small", id: "forecast-backtest" },
        el("thead", {}, el("tr", {}, ["As of", "Forecast churned MRR", "80% interval", "Actual", "Inside 80% / 95%"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, F.backtest.map((b) => el("tr", {}, el("td", {}, b.as_of), el("td", { class: "num" }, money(b.expected)),
          el("td", { class: "num" }, `${money(b.low80)} - ${money(b.high80)}`), el("td", { class: "num" }, money(b.actual)),
          el("td", {}, `${b.inside80 ? "yes" : "no"} / ${b.inside95 ? "yes" : "no"}`))))));
  }

  /** Expected retained MRR by month, with the 95% and 80% bands behind the line. */
  function retainedChart(F) {
    const W = 640, H = 220, L = 80, B = 30, T = 10, months = F.months, n = months.length;
    const lo = Math.min(...months.map((m) => m.retained_mrr_low95)), hi = F.mrr_start;
    const x = (k) => L + ((W - L - 10) * (k + 0.5)) / n, y = (v) => T + ((H - T - B) * (hi - v)) / Math.max(hi - lo, 1);
    const band = (low, high) => months.map((m, k) => `${x(k)},${y(m[high])}`).concat(months.map((m, k) => `${x(k)},${y(m[low])}`).reverse()).join(" ");
    return sv("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", id: "forecast-chart", "aria-label": "Expected retained MRR by month with 80% and 95% intervals" },
      sv("polygon", { points: band("retained_mrr_low95", "retained_mrr_high95"), fill: "#cfe0f5" }),
      sv("polygon", { points: band("retained_mrr_low80", "retained_mrr_high80"), fill: "#9dbfe8" }),
      sv("polyline", { points: months.map((m, k) => `${x(k)},${y(m.expected)}`).join(" "), fill: "none", stroke: "#1f4e8c", "stroke-width": 2 }),
      [hi, (hi + lo) / 2, lo].map((v) => sv("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11 }, money(v))),
      months.map((m, k) => sv("text", { x: x(k), y: H - 10, "text-anchor": "middle", "font-size": 11 }, m.period.slice(2))),
      months.map((m, k) => sv("circle", { cx: x(k), cy: y(m.expected), r: 3, fill: "#1f4e8c" },
        sv("title", {}, `${m.period}: ${money(m.expected)} retained (GRR ${share(m.grr, 1)}); 80% ${money(m.retained_mrr_low80)} - ${money(m.retained_mrr_high80)}`))));
  }

  // --- start --------------------------------------------------------------------------------
  renderHeader();
  renderPortfolio();
  renderQuality();
  renderMovement();
  renderForecast();
  setupTable();
  renderFooter();
  $("detail-close").addEventListener("click", closeDetail);
  $("backdrop").addEventListener("click", closeDetail);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && !$("detail").hidden) closeDetail(); });
  document.body.dataset.ready = "true";
})();
