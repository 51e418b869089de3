// One invitation, the page the invitation email links to (#/invitations/<id>): the organization, the roles,
// who invited and until when, with Accept and Decline for the invitee once signed in (the sign-in page
// comes first and returns here); after accepting, Switch to the organization. An invitation addressed to
// another email, or answered, revoked or expired, says so instead.
import { get, post, put } from "../api.js";
import { GRANTABLE_ROLES, h, pageHead, roleBadges, when } from "../ui.js";
import { fact } from "./budgets.js";

const ENDED = { accepted: "was accepted", rejected: "was declined", revoked: "was revoked by the organization",
  expired: "has expired" };

async function find(id) {
  for (const status of ["pending", "accepted", "rejected", "revoked", "expired"]) {
    const found = (await get("/v1/invitations", { status, limit: 200 })).items.find((i) => i.id === id);
    if (found) return found;
  }
  return null;
}

export async function render(ctx, [id] = []) {
  const invitation = id ? await find(id) : null;
  if (!invitation) {
    return h("section", {}, pageHead("Invitation"), h("p", { class: "notice", role: "alert" },
      `There is no invitation for ${ctx.me.email} at this link. It may be addressed to another email: sign in `,
      "with the address the invitation was sent to."));
  }
  const name = invitation.organization_name;
  const roles = invitation.roles.filter((role) => GRANTABLE_ROLES.includes(role));
  const answer = h("div", { class: "actions" });
  const facts = h("dl", { class: "facts" }, fact("Organization", name), fact("Roles", roleBadges(roles)),
    fact("Invited by", invitation.invited_by_email || invitation.invited_by),
    fact(invitation.status === "pending" ? "Expires" : "Status",
      invitation.status === "pending" ? when(invitation.expires_at) : invitation.status));

  const switchTo = () => h("button", { type: "button", class: "primary", onclick: async () => {
    await put("/v1/me/active-organization", { organization_id: invitation.organization_id });
    await ctx.reload();
    ctx.go("organizations", `${name} is your active organization.`);
  } }, `Switch to ${name}`);

  const respond = async (choice) => {
    await post(`/v1/invitations/${encodeURIComponent(invitation.id)}/${choice}`);
    if (choice === "reject") {
      answer.replaceChildren(h("p", { role: "status" }, `You declined the invitation to ${name}.`));
      return;
    }
    await ctx.reloadUntil((c) => c.cards.some((card) => card.id === invitation.organization_id));
    answer.replaceChildren(h("p", { role: "status" }, `You joined ${name}.`), switchTo());
    answer.querySelector("button").focus();
  };

  if (invitation.status === "pending") {
    answer.append(
      h("button", { type: "button", class: "primary", onclick: () => respond("accept") }, "Accept"),
      h("button", { type: "button", onclick: () => respond("reject") }, "Decline"));
  } else if (invitation.status === "accepted" && ctx.cards.some((card) => card.id === invitation.organization_id)) {
    answer.append(h("p", {}, `This invitation ${ENDED.accepted}: you are a member of ${name}.`), switchTo());
  } else {
    answer.append(h("p", { class: "notice" }, `This invitation ${ENDED[invitation.status] || invitation.status}.`));
  }
  return h("section", {}, pageHead("Invitation"),
    h("p", { class: "subtitle" }, `You are invited to join ${name}.`),
    facts, answer);
}
