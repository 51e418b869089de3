// Billing of the active organization (Owner/Billing; SPEC §11): the cards credit is bought with, buying
// credit (the amount, the credit it buys at the price billing states, and the outcome), the auto top-up
// settings (saved whole as the API's PUT takes them, its refusals beside the field they name) and the
// transactions, newest first, filtered by status and type, a page at a time.
//
// Cards are added by the provider's payment method id: in production one Stripe.js makes in the page; with
// the development provider (localstripe, what `make run` starts) a test id such as pm_card_visa.
import { ApiError, all, del, get, idempotencyKey, post, put } from "../api.js";
import {
  badge, capitalized, confirmAction, credits, editableAmount, field, form, h, input, pageHead, pagedTable, plainAmount, select, table,
  when,
} from "../ui.js";
import { fact } from "./budgets.js";

const PAGE_SIZE = 20;
const TEST_CARDS = [
  ["pm_card_visa", "Visa 4242: every charge succeeds"],
  ["pm_card_chargeCustomerFail", "Visa 0341: added, then every charge is declined"],
  ["pm_card_visa_chargeDeclined", "Visa 0002: declined when added"],
];
const TYPES = [["", "All types"], ["manual_purchase", "Purchases"], ["auto_topup", "Auto top-ups"],
  ["subscription", "Subscriptions"], ["enterprise", "Enterprise"]];
const STATUSES = [["", "All statuses"], ["success", "Succeeded"], ["pending", "Pending"], ["failed", "Failed"],
  ["cancelled", "Cancelled"]];
const TYPE_LABELS = Object.fromEntries(TYPES.slice(1).map(([value, label]) => [value, label.replace(/s$/, "")]));
const STATUS_BADGES = { success: ["Succeeded", "status-accepted"], pending: ["Pending", "status-pending"],
  failed: ["Failed", "exceeded"], cancelled: ["Cancelled", "status-expired"] };

function cardName(card) {
  if (!card) return "—";
  const brand = card.brand ? capitalized(card.brand) : "Card";
  return `${brand} •••• ${card.last4}`;
}

// "25", "25.5" or "25.50" as the credit it buys at `price` credits per USD; null when it is not an amount
// (the API says why once it is sent).
export function creditsFor(amountUsd, price) {
  const text = amountUsd.trim();
  if (!/^[0-9]+(\.[0-9]{1,2})?$/.test(text)) return null;
  const [whole, fraction = ""] = text.split(".");
  const cents = BigInt(whole) * 100n + BigInt(fraction.padEnd(2, "0"));
  const hundredths = cents * BigInt(price);                    // hundredths of a credit: exact
  const rest = hundredths % 100n;
  return `${(hundredths / 100n).toLocaleString("en-US")}${rest ? `.${String(rest).padStart(2, "0")}` : ""}`;
}

export async function render(ctx) {
  const [settings, members] = await Promise.all([get(ctx.orgPath("/auto-topup")), all(ctx.orgPath("/members"))]);
  const people = Object.fromEntries(members.map((m) => [m.user_id, m.name || m.email]));
  const nameOf = (userId) => (userId === "system" ? "Auto top-up" : people[userId] || userId);
  const price = settings.credits_per_usd;

  const balance = h("dl", { class: "facts", "aria-live": "polite" });
  const refreshBalance = async () => {
    const account = await get(ctx.orgPath("/credits"));
    balance.replaceChildren(fact("Balance", credits(account.balance)), fact("Paid credit", credits(account.paid_balance)),
      fact("Price", `${price.toLocaleString("en-US")} credits per USD`));
  };
  const history = transactionsSection(ctx, nameOf);
  const screen = { ctx, price, refreshBalance, history, cards: [] };
  const cards = cardsSection(screen);
  screen.cards = cards;
  const buying = buySection(screen);
  const topup = autoTopupSection(screen, settings);
  screen.onCardsChanged = () => { buying.setCards(cards.list); topup.setCards(cards.list); };

  await Promise.all([refreshBalance(), cards.refresh(), history.refresh()]);
  return h("section", {},
    pageHead("Billing"),
    h("p", { class: "subtitle" }, ctx.org.name),
    balance,
    cards.element,
    buying.element,
    topup.element,
    history.element);
}

// ---- payment methods ---------------------------------------------------------------------------------
function cardsSection(screen) {
  const { ctx } = screen;
  const section = { list: [] };
  const listed = h("div", {});
  section.refresh = async () => {
    section.list = await all(ctx.orgPath("/payment-methods"));
    listed.replaceChildren(table("Payment methods", [
      { label: "Card", cell: (m) => h("span", {}, cardName(m), m.is_default ? [" ", badge("Default", "status-active")] : null) },
      { label: "Expires", cell: (m) => `${String(m.exp_month).padStart(2, "0")}/${m.exp_year}` },
      { label: "Added", cell: (m) => when(m.created_at) },
      { label: "Actions", cell: (m) => h("span", { class: "actions" },
        m.is_default ? null : h("button", { type: "button", onclick: () => makeDefault(m) }, "Make default"),
        h("button", { type: "button", class: "danger", onclick: () => remove(m) }, "Remove")) },
    ], section.list, "No card yet: add one to buy credit."));
    screen.onCardsChanged?.();
  };
  const makeDefault = async (method) => {
    await put(ctx.orgPath(`/payment-methods/${encodeURIComponent(method.id)}/default`));
    await section.refresh();
    ctx.announce(`${cardName(method)} is the default card.`);
  };
  const remove = async (method) => {
    const sure = await confirmAction(`Remove ${cardName(method)}?`,
      "It is detached from the organization's customer at the provider. Transactions keep naming it.", "Remove card");
    if (!sure) return;
    await del(ctx.orgPath(`/payment-methods/${encodeURIComponent(method.id)}`));
    await section.refresh();
    ctx.announce(`${cardName(method)} removed.`);
  };
  const testIds = h("datalist", { id: "test-payment-methods" },
    TEST_CARDS.map(([value, label]) => h("option", { value }, label)));
  const addForm = form({
    submitLabel: "Add card",
    className: "inline-form",
    onSubmit: async (element) => {
      const added = await post(ctx.orgPath("/payment-methods"),
        { provider_payment_method_id: element.elements.provider_payment_method_id.value.trim() });
      element.reset();
      await section.refresh();
      ctx.announce(`${cardName(added)} added${added.is_default ? " as the default card" : ""}.`);
    },
  },
  field("Payment method id", input("provider_payment_method_id", { list: testIds.id, spellcheck: "false",
    placeholder: "pm_…" })));
  section.element = h("section", { class: "panel", "aria-labelledby": "cards-heading" },
    h("h2", { id: "cards-heading" }, "Payment methods"),
    listed,
    h("h3", {}, "Add a card"),
    h("p", { class: "hint" }, "The provider's payment method id. Only its brand, last 4 digits and expiry are kept " +
      "here, never the card number. With the development provider: ",
    TEST_CARDS.map(([value, label], index) => [index ? "; " : "", h("code", {}, value), ` (${label.split(": ")[1]})`]),
    "."),
    addForm, testIds);
  return section;
}

function cardChoices(cards, noneLabel) {
  const fallback = cards.find((m) => m.is_default);
  return [["", fallback ? `${noneLabel}: ${cardName(fallback)}` : noneLabel],
    ...cards.map((m) => [m.id, cardName(m)])];
}

// A select's options replaced, keeping the choice while it is still there.
function setOptions(control, options) {
  const chosen = control.value;
  control.replaceChildren(...options.map(([value, label]) => h("option", { value }, label)));
  control.value = options.some(([value]) => value === chosen) ? chosen : "";
}

// ---- buying credit ----------------------------------------------------------------------------------
function buySection(screen) {
  const { ctx, price } = screen;
  const outcome = h("div", { class: "purchase-outcome", role: "status" });
  const cardSelect = select("payment_method_id", [["", "Default card"]]);
  const amount = input("amount_usd", { inputmode: "decimal", placeholder: "25.00" });
  const buys = h("p", { class: "hint buys", "aria-live": "polite" });
  const showBuys = () => {
    const bought = creditsFor(amount.value, price);
    buys.textContent = bought === null ? `At ${price} credits per USD.` : `Buys ${bought} credits.`;
  };
  amount.addEventListener("input", showBuys);
  showBuys();
  // One key per purchase the person means: kept while the same amount and card are retried (a lost answer
  // asked again never charges twice), new once the purchase has an answer or the form changes.
  let key = null;
  const buyForm = form({
    submitLabel: "Buy credit",
    onSubmit: async (element) => {
      outcome.replaceChildren();
      key ||= idempotencyKey();
      const body = { amount_usd: amount.value.trim() };
      if (element.elements.payment_method_id.value) body.payment_method_id = element.elements.payment_method_id.value;
      let transaction;
      try {
        transaction = await post(ctx.orgPath("/purchases"), body, { headers: { "Idempotency-Key": key } });
      } catch (error) {
        if (error instanceof ApiError && error.status !== 0 && error.status !== 503) key = null;
        if (error instanceof ApiError && error.code === "payment_failed") {
          const code = error.details?.decline_code;
          outcome.replaceChildren(h("p", { class: "notice", role: "alert" }, error.message,
            code ? [" Decline code: ", h("code", {}, code), "."] : "", " No credit was added."));
          await screen.history.refresh();
          return;
        }
        throw error;
      }
      key = null;
      if (transaction.status === "success") {
        amount.value = "";
        showBuys();
        outcome.replaceChildren(h("p", { class: "success" },
          `Paid ${transaction.amount_usd} USD with ${cardName(transaction.payment_method)}: `,
          h("strong", {}, credits(transaction.credits)), " added to the balance."));
      } else {
        outcome.replaceChildren(h("p", { class: "notice" },
          `The card's bank asks the customer to confirm this payment (${transaction.next_action?.type || "action needed"}). ` +
          "The transaction stays pending until it is confirmed; the credit is added then."));
      }
      await Promise.all([screen.refreshBalance(), screen.history.refresh()]);
    },
  },
  field("Amount (USD)", amount, "From 5.00 to 10,000.00."),
  buys,
  field("Card", cardSelect));
  buyForm.addEventListener("input", () => { key = null; });
  return {
    setCards: (cards) => setOptions(cardSelect, cardChoices(cards, "Default card")),
    element: h("section", { class: "panel", "aria-labelledby": "buy-heading" },
      h("h2", { id: "buy-heading" }, "Buy credit"), buyForm, outcome),
  };
}

// ---- auto top-up ------------------------------------------------------------------------------------
function topupSummary(settings, cards) {
  if (!settings.enabled) {
    return h("p", { class: "settings-summary" }, settings.consecutive_failures >= 3
      ? "Off: switched off after 3 failed top-ups in a row. Check the card, then switch it on again."
      : "Off: credit is bought only by hand.");
  }
  const card = settings.payment_method_id ? cards.find((m) => m.id === settings.payment_method_id) : null;
  return h("p", { class: "settings-summary" },
    `On: when a spend takes the balance to ${credits(settings.threshold)} or below, one top-up brings it back to `,
    `${credits(settings.target)}, charged to ${card ? cardName(card) : "the default card"}`,
    settings.monthly_cap_usd ? `, at most ${settings.monthly_cap_usd} USD a month.` : ", with no monthly cap.",
    settings.consecutive_failures ? ` ${settings.consecutive_failures} failed in a row (3 switch it off).` : "");
}

function autoTopupSection(screen, initial) {
  const { ctx } = screen;
  let settings = initial;
  const summary = h("div", { "aria-live": "polite" });
  const cardSelect = select("payment_method_id", [["", "Default card"]]);
  const showSummary = () => summary.replaceChildren(topupSummary(settings, screen.cards.list));
  const enabled = h("input", { type: "checkbox", name: "enabled", checked: settings.enabled });
  const topupForm = form({
    submitLabel: "Save auto top-up",
    onSubmit: async (element) => {
      const cap = element.elements.monthly_cap_usd.value.trim();
      settings = await put(ctx.orgPath("/auto-topup"), {
        enabled: element.elements.enabled.checked,
        threshold: element.elements.threshold.value.trim(),
        target: element.elements.target.value.trim(),
        monthly_cap_usd: cap === "" ? null : cap,
        payment_method_id: element.elements.payment_method_id.value || null,
      });
      element.elements.threshold.value = editableAmount(settings.threshold);
      element.elements.target.value = editableAmount(settings.target);
      element.elements.monthly_cap_usd.value = settings.monthly_cap_usd ?? "";
      showSummary();
      ctx.announce(settings.enabled ? "Auto top-up is on." : "Auto top-up is off.");
      // Switched on at or below the threshold, a top-up has run before the answer: show what it did.
      await Promise.all([screen.refreshBalance(), screen.history.refresh()]);
    },
  },
  h("div", { class: "field check-field", "data-field": "enabled" },
    h("label", { class: "check" }, enabled, " Buy credit automatically when the balance runs low"),
    h("p", { class: "field-error", hidden: true })),
  field("Threshold (credits)", input("threshold", { value: editableAmount(settings.threshold), inputmode: "decimal" }),
    "A spend that takes the balance to this amount or below starts a top-up."),
  field("Target (credits)", input("target", { value: editableAmount(settings.target), inputmode: "decimal" }),
    "Above the threshold: a top-up brings the balance back to it in one charge (at least 5.00 USD)."),
  field("Monthly cap (USD)", input("monthly_cap_usd", { value: settings.monthly_cap_usd ?? "", inputmode: "decimal" }),
    "At most this much is charged by auto top-up in a calendar month (UTC). Empty: no cap."),
  field("Card", cardSelect));
  return {
    setCards: (cards) => {
      setOptions(cardSelect, cardChoices(cards, "Default card"));
      if (settings.payment_method_id && cards.some((m) => m.id === settings.payment_method_id)) {
        cardSelect.value = settings.payment_method_id;
      }
      showSummary();
    },
    element: h("section", { class: "panel", "aria-labelledby": "topup-heading" },
      h("h2", { id: "topup-heading" }, "Auto top-up"), summary, topupForm),
  };
}

// ---- transactions -----------------------------------------------------------------------------------
function transactionsSection(ctx, nameOf) {
  const filters = { status: "", type: "" };
  const paged = pagedTable("Transactions", [
    { label: "Created", cell: (t) => when(t.created_at) },
    { label: "Type", cell: (t) => TYPE_LABELS[t.type] || t.type },
    { label: "Status", cell: (t) => badge(...(STATUS_BADGES[t.status] || [t.status])) },
    { label: "Amount (USD)", cell: (t) => t.amount_usd, class: "number" },
    { label: "Credits", cell: (t) => plainAmount(t.credits), class: "number" },
    { label: "Card", cell: (t) => cardName(t.payment_method) },
    { label: "By", cell: (t) => nameOf(t.created_by) },
    { label: "Completed", cell: (t) => when(t.completed_at) },
    { label: "Reason", cell: (t) => (t.failure_code ? `${t.failure_message || t.failure_code} (${t.failure_code})` : "—") },
  ], "No transactions match.", (cursor) => get(ctx.orgPath("/transactions"),
    { ...filters, cursor, limit: PAGE_SIZE }), { loadingText: "Loading transactions…" });
  const choose = (name) => (event) => { filters[name] = event.target.value; paged.refresh(); };
  const toolbar = h("div", { class: "toolbar" },
    field("Status", select("status", STATUSES, "", { onchange: choose("status") })),
    field("Type", select("type", TYPES, "", { onchange: choose("type") })));
  return { refresh: paged.refresh, element: h("section", { "aria-labelledby": "transactions-heading" },
    h("div", { class: "section-head" },
      h("h2", { id: "transactions-heading" }, "Transactions"),
      h("button", { type: "button", id: "refresh-transactions", onclick: () => paged.refresh() }, "Refresh")),
    h("p", { class: "hint" }, "Every payment attempt, newest first."),
    toolbar, paged.results, paged.more) };
}
