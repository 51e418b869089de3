// API keys of the active organization (Owner/Admin; SPEC §9): the credentials of machine callers, such as an
// agent runtime charging usage for the member who talks to an agent. The list (never a secret: a prefix,
// who created it and when, last use, expiry, status), Create API key (name with its N/200 counter, scopes,
// optional expiry) and, right after, the secret shown this once with a Copy button; Revoke, after asking.
import { all, del, post } from "../api.js";
import {
  badge, checkedValues, confirmAction, countedField, field, form, h, input, isoFromLocal, loading, oneTimeSecret,
  openDialog, pageHead, table, uid, when,
} from "../ui.js";

const NAME_LIMIT = 200;
// The scopes a key may hold and what each lets it do (the routes the gateway opens to it).
export const SCOPES = [
  ["usage:write", "Spend credit for members through agents (an agent runtime charging usage)"],
  ["usage:read", "Read the balance, the ledger, budget groups and budget alerts"],
  ["audit:read", "Read the audit trail"],
];
const STATUS_LABELS = { active: "Active", revoked: "Revoked", expired: "Expired" };

export async function render(ctx) {
  // Names for "created by" (members who have left show their user id).
  const members = await all(ctx.orgPath("/members"));
  const names = Object.fromEntries(members.map((m) => [m.user_id, m.name || m.email]));
  const results = h("div", { class: "key-results" });
  const secretSlot = h("div", {});

  const refresh = async () => {
    results.replaceChildren(loading("Loading API keys…"));
    const keys = await all(ctx.orgPath("/api-keys"));
    results.replaceChildren(keyTable(ctx, keys, names, refresh));
  };

  const view = h("section", {},
    pageHead("API Keys", h("button", { type: "button", class: "primary", id: "create-api-key",
      onclick: () => createDialog(ctx, secretSlot, refresh) }, "Create API Key")),
    h("p", { class: "subtitle" }, ctx.org.name),
    h("p", { class: "hint intro" }, `A key lets a machine caller, such as an agent runtime, use the API for ${ctx.org.name} `,
      "within its scopes, sent as ", h("code", {}, "Authorization: Bearer <key>"), ". Its secret is shown once, when ",
      "it is created; revoking it refuses it from the next request on."),
    secretSlot,
    results);
  await refresh();
  return view;
}

function keyTable(ctx, keys, names, refresh) {
  return table("API Keys", [
    { label: "Name", cell: (k) => k.name },
    { label: "Scopes", cell: (k) => h("span", { class: "badges" }, k.scopes.map((scope) => badge(scope, "scope"))) },
    { label: "Prefix", cell: (k) => h("code", { class: "key-prefix" }, k.prefix) },
    { label: "Created", cell: (k) => h("span", {}, names[k.created_by] || k.created_by, h("br"), when(k.created_at)) },
    { label: "Last used", cell: (k) => (k.last_used_at ? when(k.last_used_at) : "Never") },
    { label: "Expires", cell: (k) => (k.expires_at ? when(k.expires_at) : "Never") },
    { label: "Status", cell: (k) => badge(STATUS_LABELS[k.status] || k.status, `status-${k.status}`) },
    { label: "Actions", cell: (k) => (k.status !== "active" ? "—" : h("button", { type: "button", class: "danger",
      onclick: () => revokeKey(ctx, k, refresh), "aria-label": `Revoke ${k.name}` }, "Revoke")) },
  ], keys, "No API keys yet. Create one for each machine caller, with only the scopes it needs.");
}

function scopeChoices() {
  const error = h("p", { class: "field-error", id: uid("group-error"), hidden: true });
  return h("fieldset", { class: "field checkboxes stacked", "data-field": "scopes", "aria-describedby": error.id },
    h("legend", {}, "Scopes"),
    SCOPES.map(([scope, allows]) => {
      const box = h("input", { type: "checkbox", name: "scopes", value: scope });
      return h("label", { class: "check" }, box, h("span", {}, h("code", {}, scope), " ", h("span", { class: "hint" }, allows)));
    }),
    error);
}

// The dialog closes on success and the new key's secret is shown on the screen, once; focus goes to it.
function createDialog(ctx, secretSlot, refresh) {
  let created = null;
  const dialog = openDialog("Create API Key", (close) => form({
    submitLabel: "Create API Key",
    onSubmit: async (element) => {
      const body = { name: element.elements.name.value, scopes: checkedValues(element, "scopes") };
      const expires = isoFromLocal(element.elements.expires_at.value);
      if (expires) body.expires_at = expires;
      created = await post(ctx.orgPath("/api-keys"), body);
      close();
    },
    extraActions: [h("button", { type: "button", onclick: close }, "Cancel")],
  },
  countedField("Name", input("name", { required: true }), NAME_LIMIT, "What will use it, e.g. Agent runtime."),
  scopeChoices(),
  field("Expires at (optional)", input("expires_at", { type: "datetime-local" }),
    "Your local time. Leave empty for a key that does not expire.")));
  // Runs after the dialog gave focus back to the button, so focus then moves on to the secret.
  dialog.addEventListener("close", async () => {
    if (!created) return;
    secretSlot.replaceChildren(secretPanel(created, () => secretSlot.replaceChildren()));
    secretSlot.querySelector("h2").focus();
    ctx.announce(`API key ${created.name} created.`);
    await refresh();
  });
}

// The whole key, this once (ui.js oneTimeSecret).
function secretPanel(created, dismiss) {
  return oneTimeSecret({
    title: `Your new API key: ${created.name}`, label: "API key", value: created.key,
    warning: [h("strong", {}, "Copy this key now. "), "It will not be shown again: only its prefix stays in the list. ",
      "Lost, it cannot be recovered; create a new key and revoke this one."],
    details: [`Scopes: ${created.scopes.join(", ")}. Expires: `, created.expires_at ? when(created.expires_at) : "never", "."],
    dismiss,
  });
}

async function revokeKey(ctx, key, refresh) {
  const confirmed = await confirmAction("Revoke API key",
    `Revoke ${key.name} (${key.prefix})? Whatever uses it is refused from its next request on. This cannot be undone.`,
    "Revoke key");
  if (!confirmed) return;
  await del(ctx.orgPath(`/api-keys/${encodeURIComponent(key.id)}`));
  await refresh();
  ctx.announce(`${key.name} was revoked.`);
}
