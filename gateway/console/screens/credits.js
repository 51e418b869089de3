// Credits of the active organization (Owner/Billing): balance, grants, adding credit and the ledger; and
// My Credit: the signed-in user's usage per organization this month, and using an agent from here. A spend
// refused by the member's budget group shows its reason as "budget exceeded" beside the amount, and a
// budget with nothing left reads "Budget exceeded" in the usage table.
import { all, get, idempotencyKey, post } from "../api.js";
import {
  badge, capitalized, credits, field, form, h, input, isoFromLocal, pageHead, pagedTable, plainAmount, select, table, when,
} from "../ui.js";
import { fact } from "./budgets.js";

const KINDS = [["", "All entries"], ["grant", "Grants"], ["spend", "Spends"], ["expiry", "Expiries"]];

export async function renderCredits(ctx) {
  const summary = h("div", {});
  const refreshSummary = async () => {
    const account = await get(ctx.orgPath("/credits"));
    summary.replaceChildren(
      h("dl", { class: "facts" },
        fact("Balance", credits(account.balance)), fact("Free credit", credits(account.free_balance)),
        fact("Paid credit", credits(account.paid_balance)),
        fact(`Spent in ${account.period}`, credits(account.spent_this_period)), fact("Month resets", when(account.resets_at))),
      h("h2", {}, "Grants holding credit"),
      table("Grants holding credit", [
        { label: "Type", cell: (g) => (g.type === "free" ? "Free" : "Paid") },
        { label: "Amount (credits)", cell: (g) => plainAmount(g.amount), class: "number" },
        { label: "Remaining (credits)", cell: (g) => plainAmount(g.remaining), class: "number" },
        { label: "Expires", cell: (g) => (g.expires_at ? when(g.expires_at) : "Never") },
        { label: "Added", cell: (g) => when(g.created_at) },
      ], account.grants, "No credit yet."));
  };

  // Names for the ledger's member and agent ids, where the caller can see them (Billing alone may not).
  const [members, agents] = await Promise.all([all(ctx.orgPath("/members")), all(ctx.orgPath("/agents"))]);
  const names = Object.fromEntries([...members.map((m) => [m.user_id, m.name || m.email]),
    ...agents.map((a) => [a.id, a.name])]);
  const ledger = ledgerSection(ctx, names);
  const grantForm = ctx.can("grant_credits") ? form({
    submitLabel: "Add credit",
    onSubmit: async (element) => {
      const body = { amount: element.elements.amount.value, type: element.elements.type.value };
      const expires = isoFromLocal(element.elements.expires_at.value);
      if (expires) body.expires_at = expires;
      const grant = await post(ctx.orgPath("/credits/grants"), body, { headers: { "Idempotency-Key": idempotencyKey() } });
      element.reset();
      await Promise.all([refreshSummary(), ledger.refresh()]);
      ctx.announce(`${credits(grant.amount)} of ${grant.type} credit added.`);
    },
  },
  field("Amount (credits)", input("amount", { inputmode: "decimal" }), "Up to 4 decimal places."),
  field("Type", select("type", [["paid", "Paid"], ["free", "Free"]], "paid")),
  field("Expires at (free credit only, optional)", input("expires_at", { type: "datetime-local" }))) : null;

  await Promise.all([refreshSummary(), ledger.refresh()]);
  return h("section", {},
    pageHead("Credits"),
    h("p", { class: "subtitle" }, ctx.org.name),
    summary,
    grantForm ? h("div", { class: "panel" }, h("h2", {}, "Add credit"), grantForm) : null,
    ledger.element);
}

// The ledger, newest first, a page at a time, filtered by kind.
function ledgerSection(ctx, names) {
  let kind = "";
  const ledger = pagedTable("Ledger", [
    { label: "When", cell: (e) => when(e.occurred_at) },
    { label: "Kind", cell: (e) => capitalized(e.kind) },
    { label: "Amount (credits)", cell: (e) => `${e.kind === "grant" ? "+" : "−"}${plainAmount(e.amount)}`, class: "number" },
    { label: "Balance after", cell: (e) => plainAmount(e.balance_after), class: "number" },
    { label: "By", cell: (e) => e.actor.email || e.actor.name || e.actor.id },
    { label: "Member", cell: (e) => (e.user_id ? names[e.user_id] || e.user_id : "—") },
    { label: "Agent", cell: (e) => (e.agent_id ? names[e.agent_id] || e.agent_id : "—") },
  ], "No ledger entries yet.", (cursor) => get(ctx.orgPath("/credits/ledger"), { kind, cursor, limit: 50 }),
  { loadingText: "Loading the ledger…" });
  const filter = h("div", { class: "toolbar" }, field("Show", select("kind", KINDS, "", {
    onchange: (event) => { kind = event.target.value; ledger.refresh(); } })));
  return { refresh: ledger.refresh, element: h("section", { "aria-labelledby": "ledger-heading" },
    h("h2", { id: "ledger-heading" }, "Ledger"), filter, ledger.results, ledger.more) };
}

// ---- My Credit ---------------------------------------------------------------------------------------------
function budgetStatus(usage) {
  const budget = usage.budget;
  if (budget.limit !== null && Number(budget.remaining) <= 0) return badge("Budget exceeded", "exceeded");
  if (usage.binding_limit === "balance" && Number(usage.can_spend) <= 0) return badge("No credit left", "exceeded");
  return badge("Within budget", "status-accepted");
}

export async function renderMyCredit(ctx) {
  const usageTable = h("div", {});
  const refresh = async () => {
    const usage = await all("/v1/me/usage");
    usageTable.replaceChildren(table("My usage this month", [
      { label: "Organization", cell: (u) => u.organization_name },
      { label: "Used this month", cell: (u) => credits(u.used), class: "number" },
      { label: "Budget group", cell: (u) => u.budget.budget_group_name || "None" },
      { label: "Monthly limit", cell: (u) => (u.budget.limit === null ? "No limit" : credits(u.budget.limit)), class: "number" },
      { label: "Can spend now", cell: (u) => credits(u.can_spend), class: "number" },
      { label: "Status", cell: budgetStatus },
      { label: "Resets", cell: (u) => when(u.budget.resets_at) },
    ], usage, "No usage yet."));
  };
  await refresh();
  return h("section", {},
    pageHead("My Credit"),
    h("p", { class: "subtitle" }, "What you spent this month, per organization, and what you can still spend."),
    usageTable,
    await useAgentPanel(ctx, refresh));
}

// Using an agent charges its usage to the active organization as the signed-in member: the API checks the
// right to use it, the member's budget group and the balance, and names what refused it.
async function useAgentPanel(ctx, refreshUsage) {
  const agents = await all(ctx.orgPath("/agents"));
  if (!agents.length) {
    return h("div", { class: "panel" }, h("h2", {}, "Use an agent"),
      h("p", { class: "empty" }, `No agent of ${ctx.org.name} is available to you.`));
  }
  const result = h("p", { class: "spend-result", role: "status" });
  const spendForm = form({
    submitLabel: "Use agent",
    className: "inline-form",
    onSubmit: async (element) => {
      result.textContent = "";
      const spend = await post(ctx.orgPath("/usage"),
        { agent_id: element.elements.agent_id.value, amount: element.elements.amount.value },
        { headers: { "Idempotency-Key": idempotencyKey() } });
      await refreshUsage();
      const left = spend.budget.remaining === null ? "" : ` ${credits(spend.budget.remaining)} left of your monthly budget.`;
      result.textContent = `Spent ${credits(spend.amount)} in ${ctx.org.name}.${left}`;
    },
  },
  field("Agent", select("agent_id", agents.map((agent) => [agent.id, agent.name]))),
  field("Amount (credits)", input("amount", { inputmode: "decimal" })));
  return h("div", { class: "panel" },
    h("h2", {}, `Use an agent in ${ctx.org.name}`),
    h("p", { class: "hint" }, "Charges the amount to the organization as your usage, as an agent's runtime would."),
    spendForm, result);
}
