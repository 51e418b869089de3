// Budget alerts of the active organization (Owner/Admin/Billing; issue 15): the settings (percents of a
// member's monthly limit, typed as a comma list, and a balance floor), saved whole as the API's PUT takes
// them, its refusals beside the field they name; and the alerts raised, newest first, a page at a time.
import { all, get, put } from "../api.js";
import { badge, credits, editableAmount, field, form, h, input, pageHead, pagedTable, plainAmount, when } from "../ui.js";

const PAGE_SIZE = 20;

// "80, 100" (or "80 100", "80 %") as the API's list. Whatever is not a whole number is sent as typed, so the
// API's own message about it appears beside the field: the rules (1 to 100, at most five, no repeats) are its.
export function percentsFrom(text) {
  return text.split(/[\s,;]+/).map((part) => part.replace(/%$/, "")).filter(Boolean)
    .map((part) => (/^\d+$/.test(part) ? Number(part) : part));
}

function settingsSummary(settings, nameOf) {
  const percents = settings.member_budget_percents;
  const parts = [
    percents.length ? h("span", {}, "At ", h("span", { class: "badges" }, percents.map((p) => badge(`${p} %`, "percent"))),
      " of a member's monthly limit") : "No member budget alerts",
    settings.balance_floor === null ? "; no balance floor." : `; when the balance falls to ${credits(settings.balance_floor)} or below.`,
  ];
  const changed = settings.updated_at
    ? h("p", { class: "hint" }, `Last changed by ${nameOf(settings.updated_by)}, `, when(settings.updated_at), ".")
    : h("p", { class: "hint" }, "Not set up yet: no alerts are raised.");
  return [h("p", { class: "settings-summary" }, parts), changed];
}

export async function render(ctx) {
  const path = ctx.orgPath("/alert-settings");
  const [settings, members] = await Promise.all([get(path), all(ctx.orgPath("/members"))]);
  const people = Object.fromEntries(members.map((m) => [m.user_id, m.name || m.email]));
  const nameOf = (userId) => people[userId] || userId;

  const summary = h("div", { "aria-live": "polite" }, settingsSummary(settings, nameOf));
  const settingsForm = form({
    submitLabel: "Save alert settings",
    onSubmit: async (element) => {
      const floor = element.elements.balance_floor.value.trim();
      const saved = await put(path, {
        member_budget_percents: percentsFrom(element.elements.member_budget_percents.value),
        balance_floor: floor === "" ? null : floor,
      });
      // The values as the API keeps them: percents in order, the floor as the exact amount it keeps.
      element.elements.member_budget_percents.value = saved.member_budget_percents.join(", ");
      element.elements.balance_floor.value = editableAmount(saved.balance_floor);
      summary.replaceChildren(...settingsSummary(saved, nameOf));
      ctx.announce("Alert settings saved.");
    },
  },
  field("Member budget percents", input("member_budget_percents", {
    value: settings.member_budget_percents.join(", "), inputmode: "numeric", placeholder: "e.g. 80, 100" }),
  "Up to five whole percents from 1 to 100, separated by commas. A spend that takes a member's usage this month " +
    "to one of them raises an alert (members without a monthly limit never do). Empty: none."),
  field("Balance floor (credits)", input("balance_floor", { value: editableAmount(settings.balance_floor), inputmode: "decimal" }),
    "A spend that takes the organization's balance to this amount or below raises an alert. Empty: no floor."));

  const raised = alertsSection(ctx, nameOf);
  await raised.refresh();
  return h("section", {},
    pageHead("Budget Alerts"),
    h("p", { class: "subtitle" }, ctx.org.name),
    h("div", { class: "panel" }, h("h2", {}, "Alert settings"), summary, settingsForm),
    raised.element);
}

// The auto top-up alerts (SPEC §11) share the list; they have no threshold or value of their own.
const KINDS = {
  member_budget: ["Member budget", "alert-member"],
  balance_floor: ["Balance floor", "alert-floor"],
  auto_topup_failed: ["Top-up failed", "alert-floor"],
  auto_topup_cap_reached: ["Top-up cap reached", "alert-member"],
  auto_topup_disabled: ["Auto top-up off", "alert-floor"],
};
const TOPUP_TEXT = {
  auto_topup_failed: "A top-up's charge failed (see Billing, transactions)",
  auto_topup_cap_reached: "The monthly cap stopped a top-up",
  auto_topup_disabled: "3 failed top-ups in a row switched auto top-up off",
};

function kindBadge(alert) {
  const [label, kind] = KINDS[alert.kind] || [alert.kind, ""];
  return badge(label, kind);
}

function threshold(alert) {
  if (alert.kind in TOPUP_TEXT) return TOPUP_TEXT[alert.kind];
  return alert.kind === "member_budget" ? `${alert.threshold} % of the monthly limit`
    : `Balance at or below ${credits(alert.threshold)}`;
}

function reached(alert) {
  if (alert.kind in TOPUP_TEXT) return "—";
  return alert.kind === "member_budget" ? `${plainAmount(alert.value)} used of ${credits(alert.limit)}` : `Balance ${credits(alert.value)}`;
}

// The alerts raised, newest first, a page at a time ("Load more"); Refresh asks again from the top.
function alertsSection(ctx, nameOf) {
  const { results, more, refresh } = pagedTable("Alerts raised", [
    { label: "Raised", cell: (a) => when(a.raised_at) },
    { label: "Kind", cell: kindBadge },
    { label: "Member", cell: (a) => (a.kind === "member_budget" && a.user_id ? nameOf(a.user_id) : "—") },
    { label: "Threshold", cell: threshold },
    { label: "Reached", cell: reached, class: "number" },
    { label: "Month", cell: (a) => a.period },
  ], "No alerts yet. One appears here when a spend crosses a threshold set above.",
  (cursor) => get(ctx.orgPath("/alerts"), { cursor, limit: PAGE_SIZE }), { loadingText: "Loading alerts…" });
  return { refresh, element: h("section", { "aria-labelledby": "alerts-heading" },
    h("div", { class: "section-head" },
      h("h2", { id: "alerts-heading" }, "Alerts raised"),
      h("button", { type: "button", id: "refresh-alerts", onclick: () => refresh() }, "Refresh")),
    h("p", { class: "hint" }, "Newest first. Each threshold is raised at most once per member and calendar month (UTC)."),
    results, more) };
}
