// The Funnel dashboard: a read-only view over the HTTP API with the caller's token. Everything shown
// comes from the same endpoints any client uses (/me, /pipeline, /tasks, /audit/conflicts, /events,
// /webhooks), so it sees exactly what the token's role and office may read. Text from the log is
// only ever inserted with textContent.
"use strict";

const STAGES = [
  ["ordinary", "Ordinary info · 普通信息"],
  ["valid", "Valid info · 有效信息"],
  ["prospect", "Prospect · 准客户"],
  ["contract", "Contract · 合同签订"],
  ["suspended", "Suspended · 中止"],
  ["lost", "Lost · 丢失"],
];
const TOKEN_KEY = "funnel.token";
let position = 0;
let polling = null;

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells) {
  const tr = el("tr");
  for (const c of cells) tr.append(c instanceof Node ? c : el("td", c));
  return tr;
}

function num(n) {
  const td = el("td", n, "num");
  return td;
}

// Shanghai local time, as the offices work by it.
function local(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false });
}

function money(cny) {
  return cny ? (cny / 1e6).toFixed(2) + "M" : "";
}

async function api(path) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const res = await fetch(path, { headers: { Authorization: "Bearer " + token } });
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const err = new Error((body && (body.message_en || body.detail)) || res.statusText);
    err.status = res.status;
    throw err;
  }
  return body;
}

function office(report) {
  const s = el("section");
  s.append(el("h2", `${report.code} · ${report.name}`));
  const counts = STAGES.map(([k]) => (report.by_stage[k] || { leads: 0 }).leads);
  const max = Math.max(1, ...counts);
  const t = el("table");
  t.append(row([el("th", "Stage · 阶段"), el("th", "Leads", "num"), el("th", "Amount", "num"), el("th", "")]));
  STAGES.forEach(([k, label], i) => {
    const b = report.by_stage[k] || { leads: 0, amount_cny: 0 };
    const bar = el("div", "", "bar");
    bar.style.width = `${(100 * counts[i]) / max}%`;
    const cell = el("td");
    cell.style.width = "40%";
    cell.append(bar);
    t.append(row([label, num(b.leads), num(money(b.amount_cny)), cell]));
  });
  s.append(t);
  const c = report.conversion;
  const ratio = (v, rule) => (v == null ? "–" : `${v.toFixed(1)} (rule of thumb ${rule})`);
  s.append(el("p", `Valid per prospect · 有效/准客户: ${ratio(c.valid_per_prospect, c.rule_of_thumb_valid_per_prospect)}`, "muted"));
  s.append(el("p", `Prospects per contract · 准客户/合同: ${ratio(c.prospects_per_contract, c.rule_of_thumb_prospects_per_contract)}`, "muted"));
  if (report.ageing.length) {
    s.append(el("p", `Ageing (no visit for 30+ days) · 超过30天未拜访: ${report.ageing.length}`, "late"));
    const a = el("table");
    for (const lead of report.ageing.slice(0, 5)) {
      a.append(row([lead.customer, lead.owner || "", num(`${lead.days_without_visit} d`)]));
    }
    s.append(a);
  }
  return s;
}

async function loadPipeline() {
  const p = await api(`/pipeline?at_least=${position}`);
  const box = $("offices");
  box.replaceChildren(...p.offices.map(office));
}

// A count from one page of a list: "1000+" when more pages follow.
function counted(page, items) {
  return `${items.length}${page.next ? "+" : ""}`;
}

async function loadTasks() {
  const t = await api("/tasks?limit=1000");
  $("tasks-count").textContent = counted(t, t.tasks);
  $("tasks").replaceChildren(
    ...t.tasks.map((task) => {
      const title = el("td");
      title.append(el("div", task.title_zh), el("div", task.title_en, "muted"));
      const overdue = task.due_at && new Date(task.due_at) < new Date();
      return row([title, local(task.opened_at), el("td", local(task.due_at), overdue ? "late" : "")]);
    }),
  );
}

async function loadConflicts() {
  const c = await api("/audit/conflicts");
  const touches = c.refused_touches || [];
  $("refused-count").textContent = touches.length;
  $("refused").replaceChildren(
    ...touches
      .slice(-10)
      .reverse()
      .map((t) => row([local(t.at), `${t.role} ${String(t.attempted_by).slice(0, 8)}`, el("td", `${t.action} (${t.code})`, "refused")])),
  );
}

// Saga instances that need attention: parked ones first, then active ones by their next deadline.
async function loadWorkflows() {
  const [parked, active] = await Promise.all([
    api("/workflows?status=parked&limit=1000"),
    api("/workflows?status=active&limit=1000"),
  ]);
  $("workflows-count").textContent = `${counted(active, active.instances)} active · ${counted(parked, parked.instances)} parked`;
  const next = (i) => (i.timers && i.timers.length ? i.timers[0].due_at : "");
  const soonest = active.instances
    .filter((i) => next(i))
    .sort((a, b) => next(a).localeCompare(next(b)))
    .slice(0, 10);
  $("workflows").replaceChildren(
    ...parked.instances.concat(soonest).map((i) => {
      const parkedReason = i.parked && i.parked.length ? i.parked[0].reason : "";
      const state = parkedReason ? el("td", `parked: ${parkedReason}`, "refused") : el("td", i.status);
      return row([i.kind || "?", i.subject, num(i.open_tasks), local(next(i)), state]);
    }),
  );
}

async function loadWebhooks() {
  try {
    const w = await api("/webhooks?limit=1000");
    $("webhooks-section").hidden = false;
    $("webhooks").replaceChildren(
      ...w.subscriptions.map((s) => {
        const state = s.paused ? `paused ${s.paused_reason || ""}` : s.failing ? `failing: ${s.failing.last_error}` : "active";
        return row([s.url, s.kinds.join(", ") || "all", num(s.delivered), num(s.cursor), el("td", state, s.failing ? "refused" : "")]);
      }),
    );
  } catch (e) {
    if (e.status !== 403) throw e;
    $("webhooks-section").hidden = true;
  }
}

function actorOf(e) {
  const a = e.actor || {};
  return a.name ? `system:${a.name}` : `${a.role || ""} ${a.id || ""}`.trim();
}

async function pollEvents() {
  const page = await api(`/events?after=${position}&limit=200`);
  const body = $("events");
  for (const e of page.events) {
    const tr = row([num(e.position), local(e.occurred_at), el("td", e.event_type, e.event_type.endsWith("touch_refused") ? "refused" : ""), e.stream, actorOf(e)]);
    body.prepend(tr);
    while (body.children.length > 50) body.lastChild.remove();
  }
  const last = page.next || (page.events.length ? page.events[page.events.length - 1].position : null);
  const moved = last !== null && last > position;
  if (moved) position = last;
  $("live-state").textContent = `after position ${position}`;
  return moved || page.next !== null;
}

async function refresh() {
  await Promise.all([loadPipeline(), loadTasks(), loadConflicts(), loadWorkflows(), loadWebhooks()]);
}

async function start() {
  const me = await api("/me");
  $("who").textContent = `${me.name} · ${me.role}`;
  $("signin").hidden = true;
  $("app").hidden = false;
  $("signout").hidden = false;
  const status = await api("/projections");
  position = status.head;
  $("head").textContent = `log head ${status.head}`;
  await refresh();
  let ticks = 0;
  polling = setInterval(async () => {
    try {
      const moved = await pollEvents();
      ticks += 1;
      if (moved || ticks % 10 === 0) await refresh();
    } catch (e) {
      $("live-state").textContent = `error: ${e.message}`;
    }
  }, 3000);
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  if (polling) clearInterval(polling);
  location.reload();
}

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("signin-error").textContent = "";
  try {
    await start();
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("signin-error").textContent = e.message;
  }
});
$("signout").addEventListener("click", signOut);

if (sessionStorage.getItem(TOKEN_KEY)) {
  start().catch((e) => {
    sessionStorage.removeItem(TOKEN_KEY);
    $("signin-error").textContent = e.message;
  });
}
