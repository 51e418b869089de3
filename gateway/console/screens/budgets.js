// Budget groups of the active organization (Owner/Admin): the list with its "No limit" column, creating
// and deleting groups; a group's page with each member's usage this month against the limit, its limits
// edited, members put in and taken out.
import { all, del, get, patch, post, put } from "../api.js";
import { confirmAction, credits, editableAmount, field, form, h, input, loading, pageHead, select, table, when } from "../ui.js";

export async function render(ctx, [groupId]) {
  return groupId ? renderGroup(ctx, groupId) : renderList(ctx);
}

// The body of a create or edit: an empty limit means none (null), as the API takes it.
function groupBody(element) {
  const limit = element.elements.monthly_limit.value.trim();
  const builders = element.elements.builder_limit.value.trim();
  return {
    name: element.elements.name.value,
    monthly_limit: limit === "" ? null : limit,
    builder_limit: builders === "" ? null : (Number.isInteger(Number(builders)) ? Number(builders) : builders),
  };
}

function groupFields(group = {}) {
  return [
    field("Name", input("name", { value: group.name ?? "" })),
    field("Monthly limit per member", input("monthly_limit", { inputmode: "decimal", value: editableAmount(group.monthly_limit) }),
      "Credits each member may spend per calendar month (UTC). Leave empty for no limit."),
    field("Builder limit", input("builder_limit", { inputmode: "numeric", value: group.builder_limit ?? "" }),
      "How many members holding Builder the group may contain. Leave empty for any number."),
  ];
}

async function renderList(ctx) {
  const results = h("div", {});
  const refresh = async () => {
    results.replaceChildren(loading("Loading budget groups…"));
    const groups = await all(ctx.orgPath("/budget-groups"));
    results.replaceChildren(table("Budget Groups", [
      { label: "Name", cell: (g) => h("a", { href: `#/budget-groups/${encodeURIComponent(g.id)}` }, g.name) },
      { label: "Monthly limit", cell: (g) => monthlyLimit(g.monthly_limit), class: "number" },
      { label: "Builder limit", cell: (g) => (g.builder_limit === null ? "Any number" : String(g.builder_limit)), class: "number" },
      { label: "Members", cell: (g) => String(g.member_count), class: "number" },
      { label: "Actions", cell: (g) => h("button", { type: "button", class: "danger", onclick: () => deleteGroup(ctx, g, refresh),
        "aria-label": `Delete ${g.name}` }, "Delete") },
    ], groups, "No budget groups yet."));
  };
  const createForm = form({
    submitLabel: "Create Budget Group",
    onSubmit: async (element) => {
      const group = await post(ctx.orgPath("/budget-groups"), groupBody(element));
      element.reset();
      await refresh();
      ctx.announce(`Budget group ${group.name} created (${monthlyLimit(group.monthly_limit)}).`);
    },
  }, groupFields());
  await refresh();
  return h("section", {},
    pageHead("Budget Groups"),
    h("p", { class: "subtitle" }, ctx.org.name),
    results,
    h("div", { class: "panel" }, h("h2", {}, "New budget group"), createForm));
}

async function deleteGroup(ctx, group, afterwards) {
  const confirmed = await confirmAction("Delete budget group",
    `Delete ${group.name}? Its ${group.member_count} member(s) are no longer capped by it; past usage stays.`,
    "Delete budget group");
  if (!confirmed) return;
  await del(ctx.orgPath(`/budget-groups/${encodeURIComponent(group.id)}`));
  await afterwards();
  ctx.announce(`${group.name} was deleted.`);
}

async function renderGroup(ctx, groupId) {
  const path = ctx.orgPath(`/budget-groups/${encodeURIComponent(groupId)}`);
  const [group, members] = await Promise.all([get(path, { limit: 200 }), all(ctx.orgPath("/members"))]);
  const people = Object.fromEntries(members.map((m) => [m.user_id, m]));
  const nameOf = (userId) => people[userId]?.name || people[userId]?.email || userId;
  const inGroup = new Set(group.members.items.map((m) => m.user_id));

  const editForm = form({
    submitLabel: "Save changes",
    onSubmit: async (element) => {
      const saved = await patch(path, groupBody(element));
      await ctx.refresh();
      ctx.announce(`${saved.name} saved: ${monthlyLimit(saved.monthly_limit)}. Applies from the next spend on.`);
    },
  }, groupFields(group));

  const candidates = members.filter((m) => !inGroup.has(m.user_id));
  const addForm = form({
    submitLabel: "Add to group",
    className: "inline-form",
    onSubmit: async (element) => {
      const userId = element.elements.user_id.value;
      await put(`${path}/members/${encodeURIComponent(userId)}`);
      await ctx.refresh();
      ctx.announce(`${nameOf(userId)} is now in ${group.name}.`);
    },
  }, field("Member", select("user_id", candidates.map((m) => [m.user_id, `${m.name || m.user_id} (${m.email})`]))));

  const takeOut = async (userId) => {
    await del(`${path}/members/${encodeURIComponent(userId)}`);
    await ctx.refresh();
    ctx.announce(`${nameOf(userId)} left ${group.name}.`);
  };

  return h("section", {},
    pageHead(group.name, h("a", { href: "#/budget-groups" }, "All budget groups")),
    h("dl", { class: "facts" },
      fact("Monthly limit", monthlyLimit(group.monthly_limit)),
      fact("Builder limit", group.builder_limit === null ? "Any number" : String(group.builder_limit)),
      fact("Members", String(group.member_count)),
      fact("Period", group.period),
      fact("Resets", when(group.resets_at))),
    h("h2", {}, "Usage this month"),
    table(`Usage in ${group.name}`, [
      { label: "Member", cell: (m) => nameOf(m.user_id) },
      { label: "Used", cell: (m) => credits(m.used), class: "number" },
      { label: "Limit", cell: (m) => monthlyLimit(m.limit), class: "number" },
      { label: "Remaining", cell: (m) => (m.remaining === null ? "No limit" : credits(m.remaining)), class: "number" },
      { label: "Actions", cell: (m) => h("button", { type: "button", onclick: () => takeOut(m.user_id),
        "aria-label": `Remove ${nameOf(m.user_id)} from the group` }, "Remove from Group") },
    ], group.members.items, "No members in this group yet."),
    candidates.length ? h("div", { class: "panel" }, h("h2", {}, "Add a member"), addForm) : null,
    h("div", { class: "panel" }, h("h2", {}, "Edit group"), editForm));
}

// A monthly limit per member as the screens say it: "5 credits", or "No limit" (null).
function monthlyLimit(limit) {
  return limit === null ? "No limit" : credits(limit);
}

export function fact(label, value) {
  return h("div", {}, h("dt", {}, label), h("dd", {}, value));
}
