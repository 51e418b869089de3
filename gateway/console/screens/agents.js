// Agents of the active organization: the list (searched by name) and new agents; an agent's page with its
// configuration, contributors and assignees, and the transfer to another organization: a dry run first,
// showing per contributor "will retain access" or "will be removed", then the move after a confirmation.
import { all, del, get, idempotencyKey, patch, post, put } from "../api.js";
import {
  badge, confirmAction, field, form, formDialog, h, input, loading, pageHead, roleBadges, select, table, when,
} from "../ui.js";
import { fact } from "./budgets.js";

const CONFIG_FIELDS = [
  ["name", "Name", "input"], ["code", "Code", "input"], ["mission", "Mission", "textarea"],
  ["welcome_message", "Welcome message", "textarea"], ["instructions", "Instructions", "textarea"],
  ["avatar_url", "Avatar URL", "input"],
];

export async function render(ctx, [agentId]) {
  return agentId ? renderAgent(ctx, agentId) : renderList(ctx);
}

function configFields(agent = {}) {
  return CONFIG_FIELDS.map(([name, label, kind]) => field(label, kind === "input"
    ? input(name, { value: agent[name] ?? "" })
    : h("textarea", { name, rows: kind === "textarea" && name === "instructions" ? "6" : "3" }, agent[name] ?? "")));
}

function configBody(element, { keepEmpty }) {
  const body = {};
  for (const [name] of CONFIG_FIELDS) {
    const value = element.elements[name].value;
    if (value !== "" || keepEmpty) body[name] = value;
  }
  return body;
}

async function renderList(ctx) {
  let query = "";
  const results = h("div", {});
  const refresh = async () => {
    results.replaceChildren(loading("Loading agents…"));
    const agents = await all(ctx.orgPath("/agents"), { q: query });
    results.replaceChildren(table("Agents", [
      { label: "Name", cell: (a) => h("a", { href: `#/agents/${encodeURIComponent(a.id)}` }, a.name) },
      { label: "Mission", cell: (a) => a.mission || "—" },
      { label: "Contributors", cell: (a) => String(a.contributors.length), class: "number" },
      { label: "Assignees", cell: (a) => String(a.assignees.length), class: "number" },
      { label: "Updated", cell: (a) => when(a.updated_at) },
    ], agents, query ? "No agents match this search." : "No agents yet."));
  };
  const search = form({
    submitLabel: "Search",
    className: "toolbar",
    onSubmit: async (element) => {
      query = element.elements.q.value;
      await refresh();
    },
  }, field("Search by name", input("q", { type: "search" })));
  search.setAttribute("role", "search");
  const create = ctx.can("create_agents") ? h("button", { type: "button", class: "primary", onclick: () =>
    formDialog("Create Agent", "Create Agent", configFields(), async (element) => {
      const agent = await post(ctx.orgPath("/agents"), configBody(element, { keepEmpty: false }),
        { headers: { "Idempotency-Key": idempotencyKey() } });
      ctx.go(`agents/${encodeURIComponent(agent.id)}`, `${agent.name} created.`);
    }) }, "Create Agent") : null;
  await refresh();
  return h("section", {}, pageHead("Agents", create), h("p", { class: "subtitle" }, ctx.org.name), search, results);
}

async function renderAgent(ctx, agentId) {
  const path = ctx.orgPath(`/agents/${encodeURIComponent(agentId)}`);
  const agent = await get(path);
  const may = (what) => agent.permissions.includes(what);
  // Names for the user ids the agent lists (every member may read the member list).
  const members = await all(ctx.orgPath("/members"));
  const people = Object.fromEntries(members.map((m) => [m.user_id, m]));
  const nameOf = (userId) => people[userId]?.name || people[userId]?.email || userId;

  const edit = may("edit") ? h("button", { type: "button", onclick: () =>
    formDialog(`Edit ${agent.name}`, "Save", configFields(agent), async (element) => {
      await patch(path, configBody(element, { keepEmpty: true }));
      await ctx.refresh();
      ctx.announce("Agent saved.");
    }) }, "Edit") : null;
  const remove = may("delete") ? h("button", { type: "button", class: "danger", onclick: async () => {
    if (!await confirmAction("Delete agent", `Delete ${agent.name}? This cannot be undone.`, "Delete agent")) return;
    await del(path);
    ctx.go("agents", `${agent.name} was deleted.`);
  } }, "Delete") : null;

  const view = h("section", {},
    pageHead(agent.name, edit, remove, ctx.can("view_audit")
      ? h("a", { href: `#/audit/${encodeURIComponent(agent.id)}` }, "History") : null,
    h("a", { href: "#/agents" }, "All agents")),
    h("dl", { class: "facts" },
      fact("Code", agent.code || "—"), fact("Created", when(agent.created_at)), fact("Updated", when(agent.updated_at))),
    // Its configuration, as it is now (its History shows how it came to be).
    h("section", { class: "panel agent-configuration", "aria-labelledby": "configuration-heading" },
      h("h2", { id: "configuration-heading" }, "Configuration"),
      h("dl", {}, h("dt", {}, "Mission"), h("dd", {}, agent.mission || "—"),
        h("dt", {}, "Instructions"), h("dd", { class: "instructions" }, agent.instructions || "—"))),
    peopleSection(ctx, agent, path, "contributors", members, nameOf, may("manage_access")),
    peopleSection(ctx, agent, path, "assignees", members, nameOf, may("manage_access")));
  if (may("transfer")) view.append(transferSection(ctx, agent, path, nameOf));
  return view;
}

// Contributors (members holding Builder who may edit it) or assignees (members who may use it).
function peopleSection(ctx, agent, path, kind, members, nameOf, canManage) {
  const contributors = kind === "contributors";
  const listed = new Set(agent[kind]);
  const title = contributors ? "Contributors" : "Assignees";
  const removeOne = async (userId) => {
    await del(`${path}/${kind}/${encodeURIComponent(userId)}`);
    await ctx.refresh();
    ctx.announce(`${nameOf(userId)} is no longer ${contributors ? "a contributor" : "assigned"}.`);
  };
  const rows = agent[kind].map((userId) => ({ userId }));
  const candidates = members.filter((m) => !listed.has(m.user_id) && (!contributors || m.roles.includes("builder")));
  const addForm = form({
    submitLabel: contributors ? "Add contributor" : "Assign",
    className: "inline-form",
    onSubmit: async (element) => {
      const userId = element.elements.user_id.value;
      if (contributors) await post(`${path}/contributors`, { user_id: userId });
      else await put(`${path}/assignees/${encodeURIComponent(userId)}`);
      await ctx.refresh();
      ctx.announce(`${nameOf(userId)} ${contributors ? "now contributes to" : "may now use"} ${agent.name}.`);
    },
  }, field(contributors ? "Builder" : "Member", select("user_id",
    candidates.map((m) => [m.user_id, `${m.name || m.user_id} (${m.email})`]))));
  return h("section", { "aria-labelledby": `${kind}-heading` },
    h("h2", { id: `${kind}-heading` }, title),
    table(title, [
      { label: "Member", cell: (row) => nameOf(row.userId) },
      { label: "Email", cell: (row) => members.find((m) => m.user_id === row.userId)?.email ?? "—" },
      ...(canManage ? [{ label: "Actions", cell: (row) => h("button", { type: "button",
        onclick: () => removeOne(row.userId), "aria-label": `Remove ${nameOf(row.userId)} from ${title.toLowerCase()}` },
      "Remove") }] : []),
    ], rows, contributors ? "No contributors yet." : "Not assigned to anyone yet."),
    canManage && candidates.length ? h("div", { class: "panel" }, addForm) : null);
}

// ---- transfer ------------------------------------------------------------------------------------------------
function transferSection(ctx, agent, path, nameOf) {
  // Where the user may move it: organizations where they are Owner, Admin or Builder, other than this one.
  const destinations = ctx.cards.filter((card) => card.id !== ctx.org.id
    && card.roles.some((role) => ["owner", "admin", "builder"].includes(role)));
  const report = h("div", { class: "transfer-report", "aria-live": "polite" });
  const nameOfOrg = (id) => ctx.cards.find((card) => card.id === id)?.name ?? id;

  const move = async (destinationId) => {
    const confirmed = await confirmAction("Transfer agent",
      `Move ${agent.name} to ${nameOfOrg(destinationId)}? It leaves ${ctx.org.name}; contributors marked ` +
      "\"will be removed\" lose access. Spend made before stays here.", "Transfer agent");
    if (!confirmed) return;
    await post(`${path}/transfer`, { destination_organization_id: destinationId, dry_run: false });
    ctx.go("agents", `${agent.name} moved to ${nameOfOrg(destinationId)}.`);
  };

  const dryRunForm = form({
    submitLabel: "Preview transfer",
    className: "inline-form",
    onSubmit: async (element) => {
      const destinationId = element.elements.destination_organization_id.value;
      const outcome = await post(`${path}/transfer`, { destination_organization_id: destinationId, dry_run: true });
      report.replaceChildren(h("div", {},
        h("h3", {}, `Moving to ${nameOfOrg(destinationId)}: who keeps access`),
        table("Contributors after the transfer", [
          { label: "Contributor", cell: (row) => nameOf(row.user_id) },
          { label: "Roles there", cell: (row) => (row.destination_roles.length ? roleBadges(row.destination_roles) : "Not a member") },
          { label: "Outcome", cell: (row) => badge(row.outcome,
            row.outcome === "will be removed" ? "outcome-removed" : "outcome-retain") },
        ], outcome.contributors, "No contributors."),
        outcome.assignees.length ? table("Assignees after the transfer", [
          { label: "Assignee", cell: (row) => nameOf(row.user_id) },
          { label: "Outcome", cell: (row) => badge(row.outcome,
            row.outcome === "will be removed" ? "outcome-removed" : "outcome-retain") },
        ], outcome.assignees, "") : null,
        h("div", { class: "actions" }, h("button", { type: "button", class: "danger", onclick: () => move(destinationId) },
          "Transfer agent"))));
    },
  }, field("Destination organization", select("destination_organization_id",
    destinations.map((card) => [card.id, card.name]))));

  return h("section", { "aria-labelledby": "transfer-heading" },
    h("h2", { id: "transfer-heading" }, "Transfer to another organization"),
    destinations.length
      ? h("div", { class: "panel" },
        h("p", { class: "hint" }, "A transfer moves the agent; it is not a copy. Preview it first."), dryRunForm, report)
      : h("p", { class: "empty" }, "You are Owner, Admin or Builder in no other organization to move it to."));
}
