// The audit trail of the active organization (Owner/Admin), for people: each change as a phrase ("Agent
// created", "Instructions changed"), the entity by its name beside its id (the name the entry carries, or
// the organization's members, agents and budget groups looked up), each value as its field is read (lists
// as chips, ids as the names they stand for, none as "—"); filtered by entity type, action, actor, one of
// the fields that exist, target (#/audit/<id> opens it on one entity: an agent's History link) and time, a
// page at a time; exported as CSV or JSON with the same filters.
import { all, download, get } from "../api.js";
import {
  badge, capitalized, credits, field, form, h, input, isoFromLocal, pageHead, pagedTable, select, when,
} from "../ui.js";

const ENTITY_TYPES = ["organization", "member", "invitation", "billing_transfer", "budget_group", "grant", "spend",
  "agent", "api_key", "user"];
const ACTIONS = [["", "Any action"], ["create", "Create"], ["update", "Update"], ["delete", "Delete"]];
const PAGE_SIZES = [["20", "20"], ["50", "50"], ["100", "100"], ["200", "200"]];

// The fields change events carry, offered as the Field filter.
const FIELDS = ["active_organization_id", "amount", "assignees", "balance", "billing_holder", "budget_group_id",
  "builder_limit", "code", "contributors", "description", "email", "enabled", "event_types", "expires_at",
  "instructions", "is_default", "mission", "monthly_cap_usd", "monthly_limit", "name", "organization_id", "reason",
  "roles", "scopes", "status", "target", "threshold", "to_user_id", "type", "url", "user_id"];

// "budget_group_id" is read "Budget group"; "instructions", "Instructions".
export function fieldLabel(name) {
  return capitalized(name.replace(/_id$/, "").replaceAll("_", " "));
}

// An entry as a phrase: an update by the field it changed ("Instructions changed"), anything else by its
// type ("agent.contributor_added" is "Agent contributor added").
export function phrase(entry) {
  if (entry.action === "update" && entry.changes.length && entry.type.endsWith(".updated")) {
    const [first, ...rest] = entry.changes;
    return `${fieldLabel(first.field)} changed${rest.length ? ` (and ${rest.map((c) => fieldLabel(c.field).toLowerCase()).join(", ")})` : ""}`;
  }
  return capitalized(entry.type.replace(".", " ").replaceAll("_", " "));
}

const CREDIT_AMOUNT = /^-?\d+\.\d{4}$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;

function shown(value, names) {
  if (value === null || value === undefined || value === "") return "—";
  if (Array.isArray(value)) {
    return value.length ? h("span", { class: "badges" }, value.map((item) => badge(names.get(item) || String(item), "scope")))
      : "none";
  }
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "object") return h("code", {}, JSON.stringify(value));
  if (names.has(value)) return names.get(value);
  // Credit amounts ("50.0000") with their unit; times in the browser's locale, as everywhere on screen.
  if (typeof value === "string" && CREDIT_AMOUNT.test(value)) return credits(value);
  if (typeof value === "string" && ISO_TIME.test(value)) return when(value);
  return String(value);
}

function changes(entry, names) {
  if (!entry.changes.length) return "—";
  return h("ul", { class: "changes" }, entry.changes.map((change) => h("li", {},
    h("strong", {}, fieldLabel(change.field)), ": ", shown(change.old_value, names), " → ", shown(change.new_value, names))));
}

// Ids the screen can name: the organization, its members, agents and budget groups (what the caller may read).
async function knownNames(ctx) {
  const names = new Map(ctx.cards.map((card) => [card.id, card.name]));     // your organizations
  const lists = await Promise.all([
    all(ctx.orgPath("/members")).catch(() => []),
    all(ctx.orgPath("/agents")).catch(() => []),
    ctx.can("manage_budget_groups") ? all(ctx.orgPath("/budget-groups")).catch(() => []) : [],
  ]);
  for (const member of lists[0]) names.set(member.user_id, member.name || member.email);
  for (const item of [...lists[1], ...lists[2]]) names.set(item.id, item.name);
  return names;
}

export async function render(ctx, [target] = []) {
  const path = ctx.orgPath("/audit");
  const names = await knownNames(ctx);
  // An entry that carries its entity's name (a rename, a creation) names it where no lookup does (a deleted agent).
  const learn = (entries) => {
    for (const entry of [...entries].reverse()) {
      const named = entry.changes.find((change) => change.field === "name");
      if (named && !names.has(entry.entity_id)) names.set(entry.entity_id, named.new_value ?? named.old_value);
    }
  };
  let filters = {};
  const summary = h("p", { class: "hint", "aria-live": "polite" });
  const { results, more, refresh } = pagedTable("Audit Trail", [
    { label: "When", cell: (e) => when(e.occurred_at) },
    { label: "What", cell: (e) => h("span", {}, phrase(e), h("br"), h("span", { class: "hint" }, e.type)) },
    { label: "Of", cell: (e) => h("span", {}, names.get(e.entity_id) || fieldLabel(e.entity_type), h("br"),
      h("span", { class: "hint" }, `${fieldLabel(e.entity_type).toLowerCase()} `, h("code", {}, e.entity_id))) },
    { label: "By", cell: (e) => (e.actor.id === "system" ? "The platform" : names.get(e.actor.id) || e.actor.email
      || e.actor.name || e.actor.id) },
    { label: "Changes", cell: (e) => changes(e, names) },
  ], "No entries match these filters.", async (cursor) => {
    const page = await get(path, { ...filters, cursor });
    learn(page.items);
    return page;
  }, {
    loadingText: "Loading the audit trail…",
    onShow: (entries, hasMore) => {
      summary.textContent = `${entries.length} entr${entries.length === 1 ? "y" : "ies"} shown${hasMore ? "; more below" : ""}.`;
    },
  });
  const apply = async (element) => {
    const value = (name) => element.elements[name].value.trim();
    filters = {
      entity_type: value("entity_type"), action: value("action"), actor: value("actor"), field: value("field"),
      target: value("target"), since: isoFromLocal(value("since")), until: isoFromLocal(value("until")),
      limit: value("limit"),
    };
    await refresh();
  };
  const exportAs = async (format) => {
    const { limit, ...matching } = filters;   // an export holds every matching entry, not one page
    const text = await download(path, { ...matching, format }, `audit.${format}`);
    // A CSV has a row per changed field, a JSON document an item per entry.
    const count = format === "csv" ? `${text.trim().split("\n").length - 1} rows` : `${JSON.parse(text).entries.length} entries`;
    ctx.announce(`Downloaded audit.${format} (${count}).`);
  };

  const filterForm = form({
    submitLabel: "Apply filters",
    className: "toolbar",
    onSubmit: apply,
    extraActions: [
      h("button", { type: "button", onclick: () => { filterForm.reset(); filterForm.requestSubmit(); } }, "Clear"),
      h("button", { type: "button", id: "export-csv", onclick: () => exportAs("csv") }, "Download CSV"),
      h("button", { type: "button", id: "export-json", onclick: () => exportAs("json") }, "Download JSON"),
    ],
  },
  field("Entity type", select("entity_type", [["", "Any entity"], ...ENTITY_TYPES.map((type) => [type, type])])),
  field("Action", select("action", ACTIONS)),
  field("Actor", input("actor", { placeholder: "User id or email" })),
  field("Field", select("field", [["", "Any field"], ...FIELDS.map((name) => [name, fieldLabel(name)])])),
  field("Target", input("target", { placeholder: "Entity id", value: target || "" })),
  field("Since", input("since", { type: "datetime-local" })),
  field("Until", input("until", { type: "datetime-local" })),
  field("Per page", select("limit", PAGE_SIZES, "20")));
  filterForm.setAttribute("role", "search");

  const view = h("section", {},
    pageHead("Audit Trail"),
    h("p", { class: "subtitle" }, target ? `${ctx.org.name}: the history of ${names.get(target) || target}` : ctx.org.name),
    filterForm, summary, results, more);
  await apply(filterForm);
  return view;
}
