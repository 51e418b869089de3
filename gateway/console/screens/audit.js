// The audit trail of the active organization (Owner/Admin): every change, filtered by entity type,
// action, actor, field, target and time, a page at a time; exported as CSV or JSON with the same filters.
import { download, get } from "../api.js";
import { field, form, h, input, isoFromLocal, pageHead, pagedTable, select, when } from "../ui.js";

const ENTITY_TYPES = ["organization", "member", "invitation", "billing_transfer", "budget_group", "grant", "spend",
  "agent", "api_key", "user"];
const ACTIONS = [["", "Any action"], ["create", "Create"], ["update", "Update"], ["delete", "Delete"]];
const PAGE_SIZES = [["20", "20"], ["50", "50"], ["100", "100"], ["200", "200"]];

function shown(value) {
  if (value === null || value === undefined) return "—";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function changes(entry) {
  if (!entry.changes.length) return "—";
  return h("ul", { class: "changes" }, entry.changes.map((change) => h("li", {},
    h("strong", {}, change.field), ": ", h("code", {}, shown(change.old_value)), " → ", h("code", {}, shown(change.new_value)))));
}

export async function render(ctx) {
  const path = ctx.orgPath("/audit");
  let filters = {};
  const summary = h("p", { class: "hint", "aria-live": "polite" });
  const { results, more, refresh } = pagedTable("Audit trail", [
    { label: "When", cell: (e) => when(e.occurred_at) },
    { label: "Event", cell: (e) => e.type },
    { label: "Entity", cell: (e) => h("span", {}, e.entity_type, h("br"), h("code", {}, e.entity_id)) },
    { label: "Action", cell: (e) => e.action },
    { label: "Actor", cell: (e) => e.actor.email || e.actor.name || e.actor.id },
    { label: "Changes", cell: changes },
  ], "No entries match these filters.", (cursor) => get(path, { ...filters, cursor }), {
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
  field("Field", input("field", { placeholder: "e.g. name" })),
  field("Target", input("target", { placeholder: "Entity id" })),
  field("Since", input("since", { type: "datetime-local" })),
  field("Until", input("until", { type: "datetime-local" })),
  field("Per page", select("limit", PAGE_SIZES, "20")));
  filterForm.setAttribute("role", "search");

  const view = h("section", {},
    pageHead("Audit trail"),
    h("p", { class: "subtitle" }, ctx.org.name),
    filterForm, summary, results, more);
  await apply(filterForm);
  return view;
}
