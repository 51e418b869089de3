// The console's frame: signing in, the header and navigation, and which screen the URL (#/members, ...)
// shows. Every screen works on the signed-in user's active organization, as the product's guides do.
import { ApiError, all, get, post, put, session, setRequestTimeout, watchBusy, watchSignOut } from "./api.js";
import { ROLE_LABELS, capitalized, describeError, field, form, h, input, loading } from "./ui.js";
import * as agents from "./screens/agents.js";
import * as alerts from "./screens/alerts.js";
import * as apiKeys from "./screens/api_keys.js";
import * as audit from "./screens/audit.js";
import * as billing from "./screens/billing.js";
import * as budgets from "./screens/budgets.js";
import * as credits from "./screens/credits.js";
import * as invitation from "./screens/invitation.js";
import * as members from "./screens/members.js";
import * as organizations from "./screens/organizations.js";
import * as webhooks from "./screens/webhooks.js";

// path, navigation label, screen, and the action (the organization card's `permissions`) it needs.
const SCREENS = [
  { path: "organizations", label: "Organizations", render: organizations.render },
  { path: "members", label: "Members", render: members.render, needs: "view_members" },
  { path: "budget-groups", label: "Budget Groups", render: budgets.render, needs: "manage_budget_groups" },
  { path: "agents", label: "Agents", render: agents.render },
  { path: "credits", label: "Credits", render: credits.renderCredits, needs: "view_billing" },
  { path: "billing", label: "Billing", render: billing.render, needs: "manage_payments" },
  { path: "alerts", label: "Budget Alerts", render: alerts.render, needs: "manage_alerts" },
  { path: "my-credit", label: "My Credit", render: credits.renderMyCredit },
  { path: "audit", label: "Audit Trail", render: audit.render, needs: "view_audit" },
  { path: "api-keys", label: "API Keys", render: apiKeys.render, needs: "manage_api_keys" },
  { path: "webhooks", label: "Webhooks", render: webhooks.render, needs: "manage_webhooks" },
  // Not in the navigation: the page an invitation email links to (#/invitations/<id>).
  { path: "invitations", label: "Invitation", render: invitation.render, hidden: true },
];

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const menuToggle = document.getElementById("menu-toggle");
const statusLine = document.getElementById("status");
let announceAfterMove = null;

// What the screens share: who is signed in, their organization cards, the active one, and a few actions.
const ctx = {
  me: null,
  cards: [],
  org: null,
  async reload() {
    [ctx.me, ctx.cards] = await Promise.all([get("/v1/me"), all("/v1/organizations")]);
    ctx.org = ctx.cards.find((card) => card.id === ctx.me.active_organization_id) || ctx.cards[0] || null;
    renderHeader();
  },
  // Organization cards follow a membership change within the event lag (a fraction of a second): asks
  // again, a few times, until `seen(ctx)` holds.
  async reloadUntil(seen, attempts = 15) {
    for (let attempt = 1; attempt <= attempts; attempt += 1) {
      await ctx.reload();
      if (seen(ctx) || attempt === attempts) return;
      await new Promise((resolve) => { setTimeout(resolve, 200); });
    }
  },
  can(action) {
    return Boolean(ctx.org?.permissions?.includes(action));
  },
  orgPath(rest = "") {
    return `/v1/organizations/${encodeURIComponent(ctx.org.id)}${rest}`;
  },
  // Opens another screen; `announcement` is shown once it is there (moving clears the last one).
  go(path, announcement = null) {
    announceAfterMove = announcement;
    location.hash = `#/${path}`;
  },
  refresh() {
    return renderScreen({ focus: false });
  },
  announce(text, { error = false } = {}) {
    statusLine.textContent = text;
    statusLine.classList.toggle("error", error);
    statusLine.hidden = false;
  },
};

// ---- signing in ------------------------------------------------------------------------------------------
// A token handed over by a redirect (#token=...) is taken, then removed from the address and history.
// True when there was one.
function takeRedirectedToken() {
  const match = location.hash.match(/^#token=([^&]+)/);
  if (!match) return false;
  session.signIn(decodeURIComponent(match[1]));
  history.replaceState(null, "", `${location.pathname}${location.search}#/organizations`);
  return true;
}

// What the gateway tells the page (/console/settings.json): whether it hands out development tokens (only
// while it runs with its development secret), and how long a request may take.
const consoleSettings = get("/console/settings.json").catch(() => ({}));

async function devSignInOffered() {
  return Boolean((await consoleSettings).dev_sign_in);
}

// Who was signed in when the token ran out (kept for this tab): the sign-in page names them and fills their
// details in, and, the address kept, signing in again returns to the same screen.
const LAST_USER_KEY = "console.lastUser";

function rememberedUser() {
  try {
    return JSON.parse(sessionStorage.getItem(LAST_USER_KEY) || "null");
  } catch {
    return null;
  }
}

// Why the page signs out, in a person's words (the API's code says which case it is).
function signedOutBecause(error, user) {
  const who = user ? ` as ${user.name ? `${user.name} (${user.email})` : user.email}` : "";
  if (error?.code === "token_expired") return `Your session has expired. Sign in again${who} to go on where you were.`;
  return `You were signed out: ${error?.message || "the token was refused"} Sign in again${who}.`;
}

async function showSignIn(reason) {
  const last = reason ? rememberedUser() : null;
  document.body.classList.add("signed-out");
  main.replaceChildren(loading());
  const development = await devSignInOffered();
  const pasteForm = form({
    submitLabel: "Sign in with this token",
    onSubmit: async (element) => {
      const token = element.elements.token.value.trim();
      if (!token) throw new ApiError(422, { field: "token", message: "Paste the token your identity provider gave you." });
      session.signIn(token);
      await start();
    },
  }, field("Bearer token", h("textarea", { name: "token", rows: "4", spellcheck: "false", required: true }),
    "A token from your identity provider. A sign-in page can also send you here as /console/#token=…"));
  const devForm = form({
    submitLabel: "Sign in",
    onSubmit: async (element) => {
      const { token } = await post("/v1/dev/token", {
        sub: element.elements.sub.value, email: element.elements.email.value, name: element.elements.name.value });
      session.signIn(token);
      await start();
    },
  },
  field("User id", input("sub", { required: true, autocomplete: "username", value: last?.id || "" })),
  field("Email", input("email", { type: "email", required: true, autocomplete: "email", value: last?.email || "" })),
  field("Name", input("name", { autocomplete: "name", value: last?.name || "" })));
  const reasonLine = reason ? h("p", { class: "notice", role: "alert" }, reason) : null;
  main.replaceChildren(h("section", { class: "sign-in" },
    h("h1", { tabindex: "-1" }, "Sign in"),
    reasonLine,
    development
      ? [h("p", {}, "Development sign-in: the gateway runs with its development secret and makes you a token for any user."),
        devForm, h("details", {}, h("summary", {}, "Paste a token instead"), pasteForm)]
      : [h("p", {}, "Sign in through your identity provider, then paste the token it gave you."), pasteForm]));
  main.querySelector("input, textarea").focus();
}

// Signed in: the user, their organizations, then the screen the address names.
async function start() {
  try {
    await ctx.reload();
  } catch (error) {
    // A refused token has already signed out (api.js) and shown the sign-in page again.
    if (error instanceof ApiError && error.status === 401) return;
    throw error;
  }
  document.body.classList.remove("signed-out");
  if (!location.hash.startsWith("#/")) history.replaceState(null, "", "#/organizations");
  await renderScreen({ focus: true });
}

// ---- the frame -------------------------------------------------------------------------------------------
function renderHeader() {
  document.getElementById("user").textContent = ctx.me.name ? `${ctx.me.name} (${ctx.me.email})` : ctx.me.email;
  document.getElementById("active-org").replaceChildren(ctx.org ? organizationSwitcher() : "");
  const current = currentPath()[0];
  const listed = SCREENS.filter((screen) => !screen.hidden && (!screen.needs || ctx.can(screen.needs)));
  nav.replaceChildren(h("ul", {}, listed.map((screen) =>
    h("li", {}, h("a", { href: `#/${screen.path}`, "aria-current": screen.path === current ? "page" : null },
      screen.label)))));
}

// The active organization, switched from any screen. Each choice says what tells namesakes apart: the
// type, your roles, when it was made and the start of its id.
export function organizationLabel(card) {
  const roles = card.roles.map((role) => ROLE_LABELS[role] || role).join(", ");
  const made = new Date(card.created_at).toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" });
  return `${card.name} · ${capitalized(card.type)} · ${roles} · since ${made} · #${card.id.slice(0, 6)}`;
}

function organizationSwitcher() {
  const choice = h("select", { id: "organization-switcher", name: "organization" },
    ctx.cards.map((card) => h("option", { value: card.id, selected: card.id === ctx.org.id }, organizationLabel(card))));
  choice.addEventListener("change", async () => {
    const card = ctx.cards.find((candidate) => candidate.id === choice.value);
    await put("/v1/me/active-organization", { organization_id: card.id });
    await ctx.reload();
    await renderScreen({ focus: false });
    ctx.announce(`${card.name} is now your active organization.`);
  });
  return h("span", { class: "switcher" }, h("label", { for: choice.id }, "Active organization"), choice);
}

function currentPath() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  return parts.length ? parts : ["organizations"];
}

// Renders the screen of the address; a slower render started earlier never overwrites a newer one. Moving
// to a screen (`reload`) asks again who you are in which organization first: roles someone else changed
// meanwhile (Billing handed over, a role removed) show in the header and the navigation.
let renderCount = 0;
async function renderScreen({ focus, reload = false }) {
  const mine = ++renderCount;
  const [path, ...params] = currentPath();
  const screen = SCREENS.find((candidate) => candidate.path === path) || SCREENS[0];
  renderHeader();
  if (focus) main.replaceChildren(loading());
  let view;
  try {
    if (reload) await ctx.reload();
    if (screen.needs && !ctx.can(screen.needs)) {
      view = h("section", {}, h("h1", { tabindex: "-1" }, screen.label),
        h("p", { class: "notice" }, `Your roles in ${ctx.org?.name ?? "this organization"} do not give access to this screen.`));
    } else {
      view = await screen.render(ctx, params);
    }
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.status === 401) return;
    // No answer (a time-out, the gateway unreachable): the reason, and Retry.
    const retry = error.status === 0
      ? h("button", { type: "button", class: "primary", onclick: () => renderScreen({ focus: true }) }, "Retry") : null;
    view = h("section", {}, h("h1", { tabindex: "-1" }, screen.label),
      h("p", { class: "notice", role: "alert" }, error.message), retry);
  }
  if (mine !== renderCount) return;
  main.replaceChildren(view);
  if (focus) main.querySelector("h1")?.focus();
  if (announceAfterMove) ctx.announce(announceAfterMove);
  announceAfterMove = null;
}

function closeMenu() {
  menuToggle.setAttribute("aria-expanded", "false");
  document.body.classList.remove("menu-open");
}

menuToggle.addEventListener("click", () => {
  const open = menuToggle.getAttribute("aria-expanded") !== "true";
  menuToggle.setAttribute("aria-expanded", String(open));
  document.body.classList.toggle("menu-open", open);
  if (open) nav.querySelector("a")?.focus();
});

// Signing out forgets the screen too: whoever signs in next starts at their organizations. (A token that
// expired keeps the address, so signing in again returns to where one was.)
document.getElementById("sign-out").addEventListener("click", () => {
  session.signOut();
  sessionStorage.removeItem(LAST_USER_KEY);
  ctx.me = null;
  statusLine.hidden = true;
  history.replaceState(null, "", `${location.pathname}${location.search}#/organizations`);
  showSignIn();
});

// The skip link moves focus to the screen without touching the address (the address names the screen).
document.querySelector(".skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

window.addEventListener("hashchange", () => {
  // A #token=... arriving while the page is open (another redirect) signs in as that user.
  if (takeRedirectedToken()) {
    start();
    return;
  }
  if (!location.hash.startsWith("#/")) return;
  closeMenu();
  statusLine.hidden = true;
  if (session.token && ctx.me) renderScreen({ focus: true, reload: true });
});

// A button's action refused by the API (a form shows its own errors): the reason, above the screen.
window.addEventListener("unhandledrejection", (event) => {
  if (!(event.reason instanceof ApiError) || event.reason.status === 401) return;
  event.preventDefault();
  ctx.announce(describeError(event.reason), { error: true });
});

watchBusy((pending) => {
  document.getElementById("progress").hidden = pending === 0;
  main.setAttribute("aria-busy", String(pending > 0));
});

watchSignOut((error) => {
  const wasSignedIn = Boolean(ctx.me);
  if (wasSignedIn) {
    sessionStorage.setItem(LAST_USER_KEY, JSON.stringify({ id: ctx.me.id, email: ctx.me.email, name: ctx.me.name }));
  }
  ctx.me = null;
  showSignIn(wasSignedIn ? signedOutBecause(error, rememberedUser()) : `The token was refused: ${error.message}`);
});

takeRedirectedToken();
consoleSettings.then((settings) => setRequestTimeout(settings.request_timeout_seconds)).finally(() => {
  if (session.token) start();
  else showSignIn();
});
