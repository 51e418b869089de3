// The Organization page: a card per organization the user belongs to (name, roles as badges, member count,
// ACTIVE on the active one, Switch on the others), Create Organization, rename and delete; and the
// invitations addressed to the signed-in user, which they accept or decline here.
import { del, get, idempotencyKey, patch, post, put } from "../api.js";
import {
  GRANTABLE_ROLES, badge, confirmAction, countedField, formDialog, h, input, pageHead, roleBadges, table, when,
} from "../ui.js";

const NAME_LIMIT = 200;

export async function render(ctx) {
  const invitations = (await get("/v1/invitations", { status: "pending", limit: 200 })).items;
  const list = h("ul", { class: "cards", "aria-label": "Your organizations" });
  const view = h("section", {},
    pageHead("Organizations",
      h("button", { type: "button", class: "primary", id: "create-organization", onclick: () => createDialog(ctx, list) },
        "Create Organization")),
    invitationsForMe(ctx, invitations),
    h("h2", { class: "visually-hidden" }, "Your organizations"),
    list);
  fillCards(ctx, list);
  return view;
}

function fillCards(ctx, list) {
  list.replaceChildren(...ctx.cards.map((card) => organizationCard(ctx, card, list)));
}

function organizationCard(ctx, card, list) {
  const active = card.id === ctx.org?.id;
  const canRename = card.permissions.includes("rename_organization");
  const canDelete = card.type === "collective" && card.permissions.includes("delete_organization");
  const members = card.member_count === 1 ? "1 member" : `${card.member_count} members`;
  return h("li", { class: `card${active ? " active" : ""}`, "data-organization-id": card.id },
    h("h2", {}, card.name),
    h("p", { class: "meta" }, card.type === "individual" ? "Individual organization" : "Collective organization"),
    roleBadges(card.roles),
    h("p", { class: "meta member-count" }, members),
    h("div", { class: "actions" },
      active
        ? badge("ACTIVE", "active-badge")
        : h("button", { type: "button", class: "primary", onclick: () => switchTo(ctx, card),
          "aria-label": `Switch to ${card.name}` }, "Switch"),
      canRename ? h("button", { type: "button", onclick: () => renameDialog(ctx, card, list),
        "aria-label": `Rename ${card.name}` }, "Rename") : null,
      canDelete ? h("button", { type: "button", class: "danger", onclick: () => deleteOrganization(ctx, card),
        "aria-label": `Delete ${card.name}` }, "Delete") : null));
}

async function switchTo(ctx, card) {
  await put("/v1/me/active-organization", { organization_id: card.id });
  await ctx.reload();
  await ctx.refresh();
  ctx.announce(`${card.name} is now your active organization.`);
}

// The name field of the create and rename dialogs, with its live "N/200 characters" counter. The rules and
// their messages are the API's (trimmed; empty, or over 200 characters, refused beside this field).
function nameField(initial = "") {
  return countedField("Organization Name", input("name", { value: initial, required: true }), NAME_LIMIT);
}

function createDialog(ctx, list) {
  formDialog("Create Organization", "Create", [nameField()], async (form) => {
    const card = await post("/v1/organizations", { name: form.elements.name.value },
      { headers: { "Idempotency-Key": idempotencyKey() } });
    // Listed at once from the answer, with the creator's Owner badge; no reload to wait for.
    ctx.cards.push(card);
    fillCards(ctx, list);
    ctx.announce(`${card.name} was created. You are its Owner.`);
  });
}

function renameDialog(ctx, card, list) {
  formDialog("Rename organization", "Rename", [nameField(card.name)], async (form) => {
    const renamed = await patch(`/v1/organizations/${encodeURIComponent(card.id)}`, { name: form.elements.name.value });
    Object.assign(card, renamed, { active: card.active });
    fillCards(ctx, list);
    ctx.announce(`Renamed to ${renamed.name}.`);
  });
}

async function deleteOrganization(ctx, card) {
  const confirmed = await confirmAction("Delete organization",
    `Delete ${card.name}? It disappears for every member, who then fall back to their own organization. ` +
    "Its audit trail is kept.", "Delete organization");
  if (!confirmed) return;
  await del(`/v1/organizations/${encodeURIComponent(card.id)}`);
  await ctx.reloadUntil((c) => !c.cards.some((listed) => listed.id === card.id));
  await ctx.refresh();
  ctx.announce(`${card.name} was deleted.`);
}

// ---- invitations addressed to me --------------------------------------------------------------------------
function invitationsForMe(ctx, invitations) {
  if (!invitations.length) return null;
  const respond = async (invitation, answer) => {
    await post(`/v1/invitations/${encodeURIComponent(invitation.id)}/${answer}`);
    const joined = (c) => c.cards.some((card) => card.id === invitation.organization_id);
    await ctx.reloadUntil(answer === "accept" ? joined : () => true);
    await ctx.refresh();
    ctx.announce(answer === "accept" ? `You joined ${invitation.organization_name}.`
      : `You declined the invitation to ${invitation.organization_name}.`);
  };
  return h("section", { class: "panel", "aria-labelledby": "invitations-for-me" },
    h("h2", { id: "invitations-for-me" }, "Invitations for you"),
    table("Invitations for you", [
      { label: "Organization", cell: (i) => i.organization_name },
      { label: "Roles", cell: (i) => roleBadges(i.roles.filter((role) => GRANTABLE_ROLES.includes(role))) },
      { label: "Invited by", cell: (i) => i.invited_by_email || i.invited_by },
      { label: "Expires", cell: (i) => when(i.expires_at) },
      { label: "Answer", cell: (i) => h("div", { class: "actions" },
        h("button", { type: "button", class: "primary", onclick: () => respond(i, "accept"),
          "aria-label": `Accept the invitation to ${i.organization_name}` }, "Accept"),
        h("button", { type: "button", onclick: () => respond(i, "reject"),
          "aria-label": `Decline the invitation to ${i.organization_name}` }, "Decline")) },
    ], invitations, ""));
}
