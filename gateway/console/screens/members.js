// Members of the active organization: search, role filter, sort, CSV download of the filtered list, role
// edits, removal (after a confirmation) and leaving; who holds Billing and its hand-over (Transfer Billing:
// the holder, an Owner, offers it to a member; the offer shown to everyone, Accept and Decline for the
// member it is offered to, Cancel for the one who offered); and, for Owners and Admins, its invitations:
// invite, resend, revoke, filtered by status and searched by email.
import { all, del, download, get, idempotencyKey, patch, post } from "../api.js";
import {
  GRANTABLE_ROLES, ROLE_LABELS, badge, capitalized, checkboxes, checkedValues, confirmAction, field, form, formDialog, h, input,
  loading, pageHead, roleBadges, select, table, when,
} from "../ui.js";

const SORTS = [["name", "Name (A–Z)"], ["-name", "Name (Z–A)"], ["-joined_at", "Joined (newest first)"],
  ["joined_at", "Joined (oldest first)"], ["role", "Role"]];
const STATUSES = ["pending", "accepted", "rejected", "revoked", "expired"];

export async function render(ctx) {
  const org = ctx.org;
  // Budget group names for the member list (only Owners and Admins may read the groups).
  const groups = ctx.can("manage_budget_groups") ? await all(ctx.orgPath("/budget-groups")) : [];
  const groupNames = Object.fromEntries(groups.map((group) => [group.id, group.name]));
  const filters = { q: "", role: "", sort: "name" };
  const results = h("div", { class: "member-results" });

  const refreshMembers = async () => {
    results.replaceChildren(loading("Loading members…"));
    const items = await all(ctx.orgPath("/members"), filters);
    results.replaceChildren(memberTable(ctx, items, groupNames, refreshMembers));
  };

  const toolbar = form({
    submitLabel: "Search",
    className: "toolbar",
    onSubmit: async (element) => {
      Object.assign(filters, { q: element.elements.q.value, role: element.elements.role.value,
        sort: element.elements.sort.value });
      await refreshMembers();
    },
    extraActions: [h("button", { type: "button", id: "download-members", onclick: async () => {
      const csv = await download(ctx.orgPath("/members"), { ...filters, format: "csv" }, "members.csv");
      ctx.announce(`Downloaded members.csv (${csv.trim().split("\n").length - 1} members).`);
    } }, "Download CSV")],
  },
  field("Search", input("q", { type: "search", placeholder: "Name or email" })),
  field("Role", select("role", [["", "All roles"], ...Object.entries(ROLE_LABELS)])),
  field("Sort by", select("sort", SORTS, "name")));
  toolbar.setAttribute("role", "search");
  // Filters apply as soon as they change; the search box on Enter or Search.
  for (const name of ["role", "sort"]) toolbar.elements[name].addEventListener("change", () => toolbar.requestSubmit());

  const leave = org.type === "collective"
    ? h("button", { type: "button", onclick: () => leaveOrganization(ctx) }, "Leave organization") : null;
  const view = h("section", {},
    pageHead("Members", leave),
    h("p", { class: "subtitle" }, org.name),
    toolbar, results);
  await refreshMembers();
  const billingSlot = h("div", {});
  const refreshBilling = async () => {
    billingSlot.replaceChildren(await billingSection(ctx, async () => { await refreshBilling(); await refreshMembers(); }));
  };
  if (org.type === "collective") {
    await refreshBilling();
    view.append(billingSlot);
  }
  if (ctx.can("manage_invitations") && org.type === "collective") view.append(await invitationsSection(ctx));
  return view;
}

// ---- the Billing role and its hand-over ------------------------------------------------------------------
async function billingSection(ctx, refresh) {
  const [members, pending] = await Promise.all([all(ctx.orgPath("/members")),
    get(ctx.orgPath("/billing-transfers"), { status: "pending", limit: 1 })]);
  const nameOf = (userId) => {
    const member = members.find((m) => m.user_id === userId);
    return member ? member.name || member.email : userId;
  };
  const holder = members.find((m) => m.roles.includes("billing"));
  const me = members.find((m) => m.user_id === ctx.me.id);
  const transfer = pending.items[0];
  const answer = (what, done) => async () => {
    await post(ctx.orgPath(`/billing-transfers/${encodeURIComponent(transfer.id)}/${what}`));
    // Accepted, Billing is now one of your roles: the header and the navigation (Billing, Credits) follow
    // once the organization's card has it (the event lag).
    if (what === "accept") await ctx.reloadUntil((now) => Boolean(now.org?.roles.includes("billing")));
    await refresh();
    ctx.announce(done);
  };
  const parts = [h("p", {}, holder ? [h("strong", {}, nameOf(holder.user_id)), " holds Billing: they see the ",
    "organization's credit and pay for it."] : "Nobody holds Billing.")];
  if (transfer) {
    const to = nameOf(transfer.to_user_id);
    const from = nameOf(transfer.from_user_id);
    parts.push(h("div", { class: "panel pending-transfer", role: "status" },
      h("p", {}, `${from} offered Billing to ${to} on `, when(transfer.created_at), ". ",
        transfer.to_user_id === ctx.me.id ? "Accepting makes you the one who pays for this organization."
          : `It moves when ${to} accepts.`),
      h("div", { class: "actions" },
        transfer.to_user_id === ctx.me.id ? [
          h("button", { type: "button", class: "primary", onclick: answer("accept", "You now hold Billing.") }, "Accept Billing"),
          h("button", { type: "button", onclick: answer("decline", `You declined Billing; ${from} keeps it.`) }, "Decline")]
          : null,
        transfer.from_user_id === ctx.me.id
          ? h("button", { type: "button", onclick: answer("cancel", `The offer to ${to} was cancelled.`) }, "Cancel offer")
          : null)));
  } else if (me && me.roles.includes("billing") && me.roles.includes("owner")) {
    const others = members.filter((m) => m.user_id !== ctx.me.id);
    parts.push(others.length ? form({
      submitLabel: "Offer Billing",
      onSubmit: async (element) => {
        const to = element.elements.to_user_id.value;
        await post(ctx.orgPath("/billing-transfers"), { to_user_id: to });
        await refresh();
        ctx.announce(`Billing offered to ${nameOf(to)}. It moves when they accept.`);
      },
    }, field("Transfer Billing to", select("to_user_id", others.map((m) => [m.user_id, m.name || m.email])),
      "They become the one who pays for this organization once they accept; you keep your other roles."))
      : h("p", { class: "hint" }, "Invite someone first: Billing can only go to a member."));
  }
  return h("section", { "aria-labelledby": "billing-heading" },
    h("h2", { id: "billing-heading" }, "Billing"), parts);
}

function memberTable(ctx, members, groupNames, refreshMembers) {
  const canEdit = ctx.can("edit_member_roles");
  const canRemove = ctx.can("remove_members");
  return table("Members", [
    { label: "Name", cell: (m) => m.name || m.user_id },
    { label: "Email", cell: (m) => m.email },
    { label: "Roles", cell: (m) => roleBadges(m.roles) },
    { label: "Budget group", cell: (m) => (m.budget_group_id ? groupNames[m.budget_group_id] || "In a group" : "—") },
    { label: "Joined", cell: (m) => when(m.joined_at) },
    ...(canEdit || canRemove ? [{ label: "Actions", cell: (m) => h("div", { class: "actions" },
      canEdit ? h("button", { type: "button", onclick: () => editRoles(ctx, m, refreshMembers),
        "aria-label": `Edit roles of ${m.name || m.email}` }, "Edit roles") : null,
      canRemove && m.user_id !== ctx.me.id ? h("button", { type: "button", class: "danger",
        onclick: () => removeMember(ctx, m, refreshMembers), "aria-label": `Remove ${m.name || m.email}` }, "Remove") : null) }]
      : []),
  ], members, "No members yet.");
}

function editRoles(ctx, member, refreshMembers) {
  const who = member.name || member.email;
  formDialog(`Edit roles of ${who}`, "Save roles", [
    checkboxes("Roles", "roles", GRANTABLE_ROLES.map((role) => [role, ROLE_LABELS[role]]), member.roles),
    member.roles.includes("billing")
      ? h("p", { class: "hint" }, `${who} also holds Billing, which stays: it moves only by a billing transfer.`) : null,
  ], async (element) => {
    const saved = await patch(ctx.orgPath(`/members/${encodeURIComponent(member.user_id)}`),
      { roles: checkedValues(element, "roles") });
    await refreshMembers();
    ctx.announce(`${who} now holds ${saved.roles.map((role) => ROLE_LABELS[role]).join(", ")}.`);
  });
}

async function removeMember(ctx, member, refreshMembers) {
  const who = member.name || member.email;
  const confirmed = await confirmAction("Remove member",
    `Remove ${who} from ${ctx.org.name}? Their agents stay with the organization.`, "Remove member");
  if (!confirmed) return;
  await del(ctx.orgPath(`/members/${encodeURIComponent(member.user_id)}`));
  await refreshMembers();
  ctx.announce(`${who} was removed.`);
}

async function leaveOrganization(ctx) {
  const name = ctx.org.name;
  const confirmed = await confirmAction("Leave organization",
    `Leave ${name}? You lose access to it until someone invites you again.`, "Leave organization");
  if (!confirmed) return;
  const left = ctx.org.id;
  await del(ctx.orgPath(`/members/${encodeURIComponent(ctx.me.id)}`));
  await ctx.reloadUntil((c) => !c.cards.some((card) => card.id === left));
  ctx.go("organizations", `You left ${name}.`);
}

// ---- invitations ------------------------------------------------------------------------------------------
async function invitationsSection(ctx) {
  const agents = await all(ctx.orgPath("/agents"));
  const filters = { status: "pending", q: "" };
  const results = h("div", {});
  const refresh = async () => {
    results.replaceChildren(loading("Loading invitations…"));
    const items = (await get(ctx.orgPath("/invitations"), { ...filters, limit: 200 })).items;
    results.replaceChildren(invitationTable(ctx, items, refresh));
  };

  const inviteForm = form({
    submitLabel: "Send invitation",
    onSubmit: async (element) => {
      const body = { email: element.elements.email.value, roles: checkedValues(element, "roles") };
      const agentIds = checkedValues(element, "agent_ids");
      if (agentIds.length) body.agent_ids = agentIds;
      const invitation = await post(ctx.orgPath("/invitations"), body, { headers: { "Idempotency-Key": idempotencyKey() } });
      element.reset();
      await refresh();
      ctx.announce(`Invitation sent to ${invitation.email}.`);
    },
  },
  field("Email", input("email", { type: "email", autocomplete: "off" })),
  checkboxes("Roles", "roles", GRANTABLE_ROLES.map((role) => [role, ROLE_LABELS[role]]), ["member"]),
  agents.length ? checkboxes("Agents to assign on acceptance (optional)", "agent_ids",
    agents.map((agent) => [agent.id, agent.name])) : null);

  const filterForm = form({
    submitLabel: "Filter",
    className: "toolbar",
    onSubmit: async (element) => {
      Object.assign(filters, { status: element.elements.status.value, q: element.elements.q.value });
      await refresh();
    },
  },
  field("Status", select("status", [["", "All statuses"], ...STATUSES.map((s) => [s, capitalized(s)])], "pending")),
  field("Search email", input("q", { type: "search" })));
  filterForm.setAttribute("role", "search");
  filterForm.elements.status.addEventListener("change", () => filterForm.requestSubmit());

  await refresh();
  return h("section", { "aria-labelledby": "invitations-heading" },
    h("h2", { id: "invitations-heading" }, "Invitations"),
    h("div", { class: "panel" }, h("h3", {}, "Invite someone"), inviteForm),
    filterForm, results);
}

function invitationTable(ctx, invitations, refresh) {
  const act = async (invitation, what, done) => {
    await post(ctx.orgPath(`/invitations/${encodeURIComponent(invitation.id)}/${what}`));
    await refresh();
    ctx.announce(done);
  };
  return table("Invitations", [
    { label: "Email", cell: (i) => i.email },
    { label: "Status", cell: (i) => badge(capitalized(i.status), `status-${i.status}`) },
    { label: "Roles", cell: (i) => roleBadges(i.roles) },
    { label: "Created", cell: (i) => when(i.created_at) },
    { label: "Last sent", cell: (i) => when(i.last_sent_at) },
    { label: "Invited by", cell: (i) => i.invited_by_email || i.invited_by },
    { label: "Actions", cell: (i) => (i.status !== "pending" ? "—" : h("div", { class: "actions" },
      resendButton(i, () => act(i, "resend", `Invitation to ${i.email} sent again.`)),
      h("button", { type: "button", class: "danger", onclick: () => act(i, "revoke", `Invitation to ${i.email} revoked.`),
        "aria-label": `Revoke the invitation to ${i.email}` }, "Revoke"))) },
  ], invitations, "No invitations yet.");
}

// An invitation can be sent again 10 minutes after its last send: until then the button says from when.
const RESEND_AFTER_MS = 10 * 60 * 1000;

function resendButton(invitation, resend) {
  const from = new Date(Date.parse(invitation.last_sent_at) + RESEND_AFTER_MS);
  const early = from > new Date();
  const at = from.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
  return h("button", { type: "button", disabled: early, onclick: resend,
    "aria-label": early ? `Resend the invitation to ${invitation.email}: possible from ${at}`
      : `Resend the invitation to ${invitation.email}` }, early ? `Resend from ${at}` : "Resend");
}
