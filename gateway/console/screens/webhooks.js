// Webhooks of the active organization (Owner/Admin; SPEC §12): the endpoints its change events are pushed
// to, each with the event types it takes (or all of them), whether it is enabled (and why the platform
// disabled it), Add endpoint and Edit (URL, description, the event type picker), the signing secret shown
// once at creation and at each rotation, Send test, Enable/Disable, Delete after asking; and an endpoint's
// delivery log (each delivery with its attempts' status codes, filtered by status, a page at a time) with
// Retry per delivery.
import { all, del, get, patch, post } from "../api.js";
import {
  badge, confirmAction, countedField, field, form, h, input, loading, oneTimeSecret, openDialog, pageHead, pagedTable,
  select, table, uid, when,
} from "../ui.js";

const DESCRIPTION_LIMIT = 500;
const PAGE_SIZE = 20;
const DELIVERY_STATUSES = [["", "All deliveries"], ["pending", "Pending"], ["delivered", "Delivered"],
  ["failed", "Failed"]];
const DELIVERY_BADGES = { pending: ["Pending", "status-pending"], delivered: ["Delivered", "status-accepted"],
  failed: ["Failed", "exceeded"] };

export async function render(ctx) {
  const types = (await get("/v1/webhooks/event-types")).items;
  const results = h("div", { class: "endpoint-results" });
  const secretSlot = h("div", {});
  const logSlot = h("div", {});
  const showSecret = (endpoint, title) => {
    secretSlot.replaceChildren(secretPanel(endpoint, title, () => secretSlot.replaceChildren()));
    secretSlot.querySelector("h2").focus();
  };

  const refresh = async () => {
    results.replaceChildren(loading("Loading endpoints…"));
    const endpoints = await all(ctx.orgPath("/webhooks"));
    results.replaceChildren(endpointTable(ctx, endpoints, types, { refresh, showSecret, logSlot }));
  };

  const view = h("section", {},
    pageHead("Webhooks", h("button", { type: "button", class: "primary", id: "add-endpoint",
      onclick: () => endpointDialog(ctx, types, null, async (created) => {
        showSecret(created, `Signing secret of ${created.url}`);
        ctx.announce("Endpoint added.");
        await refresh();
      }) }, "Add Endpoint")),
    h("p", { class: "subtitle" }, ctx.org.name),
    h("p", { class: "hint intro" }, `The events of ${ctx.org.name} you choose are sent to your endpoints as signed `,
      "POST requests (Standard Webhooks: verify them with the endpoint's signing secret). A failed delivery is ",
      "tried again for about 3 days; an endpoint that answers 410, or fails every attempt for 5 days, is disabled."),
    secretSlot,
    results,
    logSlot);
  await refresh();
  return view;
}

function statusOf(endpoint) {
  if (endpoint.enabled) return badge("Enabled", "status-accepted");
  return h("span", {}, badge("Disabled", "status-expired"),
    endpoint.disabled_reason ? h("span", { class: "hint" }, ` ${endpoint.disabled_reason}`) : null);
}

function eventsOf(endpoint) {
  if (endpoint.event_types.includes("*")) return badge("All events", "scope");
  return h("span", { class: "badges" }, endpoint.event_types.map((type) => badge(type, "scope")));
}

function endpointTable(ctx, endpoints, types, { refresh, showSecret, logSlot }) {
  const act = (label, endpoint, onclick, kind = "") => h("button", { type: "button", class: kind, onclick,
    "aria-label": `${label}: ${endpoint.url}` }, label);
  return table("Webhook endpoints", [
    { label: "URL", cell: (e) => h("span", {}, h("code", { class: "endpoint-url" }, e.url),
      e.description ? h("span", { class: "hint" }, h("br"), e.description) : null) },
    { label: "Events", cell: eventsOf },
    { label: "Status", cell: statusOf },
    { label: "Added", cell: (e) => when(e.created_at) },
    { label: "Actions", cell: (e) => h("span", { class: "row-actions" },
      act("Deliveries", e, () => showLog(ctx, e, logSlot)),
      act("Send test", e, async () => {
        await post(ctx.orgPath(`/webhooks/${encodeURIComponent(e.id)}/test`));
        ctx.announce(`A test message is on its way to ${e.url}.`);
        await showLog(ctx, e, logSlot);
      }),
      act("Edit", e, () => endpointDialog(ctx, types, e, async () => {
        ctx.announce("Endpoint saved.");
        await refresh();
      })),
      act(e.enabled ? "Disable" : "Enable", e, async () => {
        await patch(ctx.orgPath(`/webhooks/${encodeURIComponent(e.id)}`), { enabled: !e.enabled });
        ctx.announce(`${e.url} is ${e.enabled ? "disabled" : "enabled"}.`);
        await refresh();
      }),
      act("Rotate secret", e, async () => {
        const confirmed = await confirmAction("Rotate signing secret",
          `Make a new signing secret for ${e.url}? The current one keeps signing beside it for 24 hours, so your ` +
          "receiver can switch over.", "Rotate secret");
        if (!confirmed) return;
        const rotated = await post(ctx.orgPath(`/webhooks/${encodeURIComponent(e.id)}/rotate-secret`));
        showSecret(rotated, `New signing secret of ${e.url}`);
        await refresh();
      }),
      act("Delete", e, async () => {
        const confirmed = await confirmAction("Delete endpoint",
          `Delete the endpoint ${e.url}? Nothing more is sent to it, and its pending deliveries end.`, "Delete endpoint");
        if (!confirmed) return;
        await del(ctx.orgPath(`/webhooks/${encodeURIComponent(e.id)}`));
        logSlot.replaceChildren();
        ctx.announce(`${e.url} was deleted.`);
        await refresh();
      }, "danger")) },
  ], endpoints, "No endpoints yet. Add one to have this organization's events sent to your systems.");
}

// The event type picker: "All events" or types chosen one by one, grouped by what they are about.
function eventPicker(types, chosen) {
  const everything = chosen.includes("*");
  const error = h("p", { class: "field-error", id: uid("group-error"), hidden: true });
  const all = h("input", { type: "checkbox", name: "all_events", checked: everything });
  const groups = {};
  for (const type of types) (groups[type.split(".")[0]] ||= []).push(type);
  const list = h("div", { class: "event-types", hidden: everything },
    Object.entries(groups).map(([group, members]) => h("fieldset", { class: "event-group" },
      h("legend", {}, group.replaceAll("_", " ")),
      members.map((type) => h("label", { class: "check" },
        h("input", { type: "checkbox", name: "event_types", value: type, checked: chosen.includes(type) }),
        h("code", {}, type))))));
  all.addEventListener("change", () => { list.hidden = all.checked; });
  return h("fieldset", { class: "field checkboxes stacked", "data-field": "event_types", "aria-describedby": error.id },
    h("legend", {}, "Events to send"),
    h("label", { class: "check" }, all, h("span", {}, "All events, including those added later")),
    list,
    error);
}

function chosenTypes(element) {
  if (element.elements.all_events.checked) return ["*"];
  return [...element.querySelectorAll("input[name='event_types']:checked")].map((box) => box.value);
}

// Add (endpoint null) or edit an endpoint; `done(answer)` runs once the dialog closed after a success.
function endpointDialog(ctx, types, endpoint, done) {
  let saved = null;
  const dialog = openDialog(endpoint ? "Edit endpoint" : "Add Endpoint", (close) => form({
    submitLabel: endpoint ? "Save" : "Add Endpoint",
    onSubmit: async (element) => {
      const body = { url: element.elements.url.value, description: element.elements.description.value,
        event_types: chosenTypes(element) };
      saved = endpoint
        ? await patch(ctx.orgPath(`/webhooks/${encodeURIComponent(endpoint.id)}`), body)
        : await post(ctx.orgPath("/webhooks"), body);
      close();
    },
    extraActions: [h("button", { type: "button", onclick: close }, "Cancel")],
  },
  field("Endpoint URL", input("url", { type: "url", required: true, value: endpoint?.url || "",
    placeholder: "https://example.com/webhooks" }), "https, on a public address. Requests come as POST with JSON."),
  countedField("Description (optional)", input("description", { value: endpoint?.description || "" }),
    DESCRIPTION_LIMIT, "What it is for, e.g. CRM sync."),
  eventPicker(types, endpoint ? endpoint.event_types : [])));
  dialog.addEventListener("close", async () => { if (saved) await done(saved); });
}

function secretPanel(endpoint, title, dismiss) {
  return oneTimeSecret({
    title, label: "Signing secret", value: endpoint.secret,
    warning: [h("strong", {}, "Copy this secret now. "), "It will not be shown again. Your receiver verifies each ",
      "request's webhook-signature with it (any Standard Webhooks library does)."],
    details: endpoint.previous_secret_expires_at
      ? ["The previous secret also signs until ", when(endpoint.previous_secret_expires_at), "."]
      : "Requests are signed with it from now on.",
    dismiss,
  });
}

function attemptsOf(delivery) {
  if (!delivery.attempts.length) return "Not tried yet";
  return h("ol", { class: "attempts", reversed: true }, delivery.attempts.map((attempt) => h("li", {},
    attempt.status_code ? badge(String(attempt.status_code), attempt.status_code < 300 ? "status-accepted" : "exceeded")
      : badge("No answer", "exceeded"),
    " ", when(attempt.attempted_at), `, ${attempt.duration_ms} ms`,
    attempt.error ? h("span", { class: "hint" }, ` ${attempt.error}`) : null)));
}

// An endpoint's delivery log, below the list: a page at a time, filtered by status, Retry per delivery.
async function showLog(ctx, endpoint, logSlot) {
  const base = ctx.orgPath(`/webhooks/${encodeURIComponent(endpoint.id)}/deliveries`);
  const status = select("status", DELIVERY_STATUSES, "");
  const log = pagedTable(`Deliveries to ${endpoint.url}`, [
    { label: "Event", cell: (d) => h("span", {}, h("code", {}, d.event_type), h("br"),
      h("span", { class: "hint" }, d.message_id)) },
    { label: "Status", cell: (d) => {
      const [label, kind] = DELIVERY_BADGES[d.status] || [d.status, ""];
      return h("span", {}, badge(label, kind), d.next_attempt_at ? h("span", { class: "hint" }, " next try ",
        when(d.next_attempt_at)) : null);
    } },
    { label: "Attempts", cell: attemptsOf },
    { label: "Created", cell: (d) => when(d.created_at) },
    { label: "Actions", cell: (d) => h("button", { type: "button", "aria-label": `Retry ${d.message_id}`,
      onclick: async () => {
        await post(`${base}/${encodeURIComponent(d.id)}/retry`);
        ctx.announce("Sent again.");
        await log.refresh();
      } }, "Retry") },
  ], "Nothing sent to this endpoint yet.", (cursor) => get(base, { limit: PAGE_SIZE, cursor,
    status: status.value || undefined }), { loadingText: "Loading deliveries…" });
  status.addEventListener("change", () => log.refresh());
  const headingId = uid("log-heading");
  logSlot.replaceChildren(h("section", { class: "panel delivery-log", "aria-labelledby": headingId },
    h("h2", { id: headingId, tabindex: "-1" }, `Deliveries to ${endpoint.url}`),
    h("div", { class: "toolbar" }, field("Show", status),
      h("button", { type: "button", onclick: () => log.refresh() }, "Refresh")),
    log.results, log.more));
  await log.refresh();
  logSlot.querySelector("h2").focus();
}
