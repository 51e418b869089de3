// What every screen builds with: elements (text is always set as text, never parsed as HTML, so a name
// typed by someone else cannot inject markup), forms whose API errors land beside the field they name,
// dialogs that take and give back focus, tables with their empty states.
import { ApiError } from "./api.js";

let lastId = 0;
export function uid(prefix = "id") {
  lastId += 1;
  return `${prefix}-${lastId}`;
}

// h("button", { class: "primary", onclick: save }, "Save"): props are attributes (true: present, false or
// null: absent), `on...` listeners, `text` the text content; children are nodes or strings.
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") element.addEventListener(key.slice(2), value);
    else if (key === "class") element.className = value;
    else if (key === "text") element.textContent = value;
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  element.append(...children.flat(Infinity).filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}

// "collective" as "Collective": the first letter capitalized (a code shown as a word).
export function capitalized(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export const ROLE_LABELS = { owner: "Owner", admin: "Admin", builder: "Builder", member: "Member", billing: "Billing" };
// The roles an invitation or a role edit can set: Billing moves only by a billing transfer.
export const GRANTABLE_ROLES = ["owner", "admin", "builder", "member"];

export function badge(text, kind = "") {
  return h("span", { class: `badge ${kind}`.trim() }, text);
}

export function roleBadges(roles) {
  return h("span", { class: "badges" }, roles.map((role) => badge(ROLE_LABELS[role] || role, `role-${role}`)));
}

const TIME_FORMAT = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
export function when(iso) {
  if (!iso) return "—";
  const time = new Date(iso);
  return h("time", { datetime: iso, title: iso }, Number.isNaN(time.getTime()) ? iso : TIME_FORMAT.format(time));
}

// A <datetime-local> value (the user's local time) as the ISO 8601 UTC time the API takes.
export function isoFromLocal(value) {
  return value ? new Date(value).toISOString() : "";
}

export function loading(text = "Loading…") {
  return h("p", { class: "loading", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), text);
}

export function emptyState(text) {
  return h("p", { class: "empty" }, text);
}

export function pageHead(title, ...actions) {
  return h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, title), h("div", { class: "page-actions" }, actions));
}

// A table of `rows`; columns are { label, cell: row => node or text, class? }. No rows: the empty state.
export function table(caption, columns, rows, emptyText) {
  if (!rows.length) return emptyState(emptyText);
  return h("div", { class: "table-wrap" },
    h("table", {},
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, columns.map((column) => h("th", { scope: "col", class: column.class }, column.label)))),
      h("tbody", {}, rows.map((row) => h("tr", {}, columns.map((column) => h("td", {
        class: column.class, "data-label": column.label }, column.cell(row))))))));
}

// A table read a page at a time, as the API pages lists: `fetchPage(cursor)` answers {items, next_cursor}.
// `results` holds the table (or its empty state), `more` the "Load more" button; `refresh()` starts again
// from the first page; `onShow(rows, hasMore)`, if given, runs after each redraw (a count, say).
export function pagedTable(caption, columns, emptyText, fetchPage, { loadingText = "Loading…", onShow } = {}) {
  let cursor = null;
  const rows = [];
  const results = h("div", {});
  const more = h("button", { type: "button", class: "more", hidden: true, onclick: () => load() }, "Load more");
  const load = async () => {
    const page = await fetchPage(cursor);
    rows.push(...page.items);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    results.replaceChildren(table(caption, columns, rows, emptyText));
    if (onShow) onShow(rows, Boolean(cursor));
  };
  const refresh = async () => {
    rows.length = 0;
    cursor = null;
    more.hidden = true;
    results.replaceChildren(loading(loadingText));
    await load();
  };
  return { results, more, refresh };
}

// ---- forms ---------------------------------------------------------------------------------------------
// A labelled control with the slot its error appears in; `name` ties both to the API's error.field.
export function field(label, control, hint) {
  control.id ||= uid("field");
  const error = h("p", { class: "field-error", id: `${control.id}-error`, hidden: true });
  const help = hint ? h("p", { class: "hint", id: `${control.id}-hint` }, hint) : null;
  control.setAttribute("aria-describedby", [help?.id, error.id].filter(Boolean).join(" "));
  return h("div", { class: "field", "data-field": control.name }, h("label", { for: control.id }, label), control, help, error);
}

// A labelled text field with a live "N/limit characters" counter under it (characters as the API counts
// them: trimmed, code points, not UTF-16 units). The limit and its message stay the API's.
export function countedField(label, control, limit, hint) {
  const counter = h("p", { class: "counter" });
  const count = () => {
    const length = [...control.value.trim()].length;
    counter.textContent = `${length}/${limit} characters`;
    counter.classList.toggle("over", length > limit);
  };
  control.addEventListener("input", count);
  count();
  const wrapper = field(label, control, hint);
  counter.id = `${control.id}-counter`;
  wrapper.querySelector(".field-error").before(counter);
  control.setAttribute("aria-describedby", `${counter.id} ${control.getAttribute("aria-describedby")}`);
  return wrapper;
}

export function input(name, props = {}) {
  return h("input", { name, type: "text", autocomplete: "off", ...props });
}

export function select(name, options, selected = "", props = {}) {
  return h("select", { name, ...props }, options.map(([value, label]) =>
    h("option", { value, selected: value === selected }, label)));
}

// Checkboxes under one legend; the API names the group (e.g. "roles") when it refuses the choice.
export function checkboxes(legend, name, options, checked = []) {
  const error = h("p", { class: "field-error", id: uid("group-error"), hidden: true });
  return h("fieldset", { class: "field checkboxes", "data-field": name, "aria-describedby": error.id },
    h("legend", {}, legend),
    options.map(([value, label]) => h("label", { class: "check" },
      h("input", { type: "checkbox", name, value, checked: checked.includes(value) }), ` ${label}`)),
    error);
}

export function checkedValues(form, name) {
  return [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((box) => box.value);
}

// What a refusal says to a person, the one place the API's words become the screen's: what kind of refusal
// it is where that matters, the field called by its label on screen (the API says "monthly_limit", the
// screen "Monthly limit per member"), times in the browser's locale and time zone, credit amounts with
// their unit and without the zeros that say nothing ("12.5000" is "12.5 credits").
// Codes whose API message speaks of the API's rules more than of what to type: the screen's own sentence.
// A sentence may return null to keep the API's own message (put in the screen's words) for that case.
const SENTENCES = {
  invalid_email: (label) => `${label || "Email"} must be an email address, such as name@example.com.`,
  // "amount is not a decimal number such as "12.50"" (a string of digits is what the API asks of programs).
  invalid_amount: (label, error) => (/zero/.test(error.message) ? null
    : `${label || "Amount"} must be a number, such as 12.5.`),
};

export function describeError(error, label = null) {
  const own = SENTENCES[error.code]?.(label, error);
  let text = own || inScreenWords(error.message, error.field, label);
  if (error.code === "budget_exceeded") text = `Refused: budget exceeded. ${text}`;
  if (error.code === "insufficient_credits") text = `Refused: not enough credit. ${text}`;
  return text;
}

const ISO_TIME = /\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})\b/g;
// Credit amounts, which the API writes with 4 decimals ("12.5000"); USD ("5.00") and examples keep theirs.
const PADDED_AMOUNT = /\b(\d+)\.(\d{4})\b/g;

export function inScreenWords(message, field, label) {
  let text = message || "";
  if (field && label) {
    // "The sub must be…", "monthly_limit is not…": the field's name where the screen shows its label.
    const names = [field, field.replaceAll("_", " ")].map((name) => name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    const named = new RegExp(`^(?:The )?(?:${names.join("|")})\\b`);
    if (named.test(text)) text = text.replace(named, label);
  }
  text = text.replace(ISO_TIME, (iso) => new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }));
  return text.replace(PADDED_AMOUNT, (amount) => credits(amount));
}

// A credit amount as a person reads it: the API writes exact amounts with 4 decimals ("2500.0000"); the
// screen shows "2,500" and "1.25", without the zeros that say nothing, and `credits` adds the unit.
export function plainAmount(amount) {
  if (amount === null || amount === undefined || amount === "") return "";
  const text = String(amount);
  const sign = text.startsWith("-") ? "−" : "";
  const [whole, fraction = ""] = text.replace(/^[-+]/, "").split(".");
  const digits = fraction.replace(/0+$/, "");
  return `${sign}${BigInt(whole).toLocaleString("en-US")}${digits ? `.${digits}` : ""}`;
}

export function credits(amount) {
  const plain = plainAmount(amount);
  return `${plain} ${plain === "1" ? "credit" : "credits"}`;
}

// An amount put back into a field to edit: the same exact number without padding or separators ("20").
export function editableAmount(amount) {
  return amount === null || amount === undefined ? "" : plainAmount(amount).replaceAll(",", "").replace("−", "-");
}

export function clearErrors(form) {
  for (const slot of form.querySelectorAll(".field-error, .form-error")) {
    slot.textContent = "";
    slot.hidden = true;
  }
  for (const control of form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
}

// The error beside the field it names when the form has that field, else at the top of the form.
export function showError(form, error) {
  clearErrors(form);
  const holder = error.field ? form.querySelector(`[data-field="${CSS.escape(error.field)}"]`) : null;
  const label = holder?.querySelector(":scope > label, :scope > legend")?.textContent.trim() || null;
  const text = describeError(error, label);
  if (holder) {
    const slot = holder.querySelector(".field-error");
    slot.textContent = text;
    slot.hidden = false;
    const control = holder.querySelector("input, select, textarea");
    control?.setAttribute("aria-invalid", "true");
    control?.focus();
    return;
  }
  const top = form.querySelector(".form-error");
  top.textContent = text;
  top.hidden = false;
  top.focus();
}

// A form whose submit runs `onSubmit(form)` once at a time; an ApiError it throws is shown in the form.
export function form({ submitLabel, onSubmit, className = "", extraActions = [] }, ...children) {
  const submit = h("button", { type: "submit", class: "primary" }, submitLabel);
  const element = h("form", { class: className, novalidate: true },
    h("p", { class: "form-error", role: "alert", tabindex: "-1", hidden: true }),
    children,
    h("div", { class: "actions" }, submit, extraActions));
  // Typing into a field takes its error away: the message is about a value no longer there.
  element.addEventListener("input", (event) => {
    const holder = event.target.closest("[data-field]");
    const slot = holder?.querySelector(".field-error");
    if (!slot || slot.hidden) return;
    slot.hidden = true;
    slot.textContent = "";
    event.target.removeAttribute("aria-invalid");
  });
  element.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(element);
    submit.disabled = true;
    element.setAttribute("aria-busy", "true");
    try {
      await onSubmit(element);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      showError(element, error);
    } finally {
      submit.disabled = false;
      element.removeAttribute("aria-busy");
    }
  });
  return element;
}

// ---- dialogs -------------------------------------------------------------------------------------------
// A modal <dialog> titled `title`: the browser keeps focus inside it and closes it on Escape; it opens on
// its first field and gives focus back to what opened it. `build(close)` makes its content.
export function openDialog(title, build) {
  const opener = document.activeElement;
  const heading = h("h2", { id: uid("dialog-title") }, title);
  const dialog = h("dialog", { class: "dialog", "aria-labelledby": heading.id }, heading);
  dialog.append(build(() => dialog.close()));
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (opener && opener.isConnected) opener.focus();
  });
  document.body.append(dialog);
  dialog.showModal();
  (dialog.querySelector("input:not([type=hidden]), select, textarea") || dialog.querySelector("button"))?.focus();
  return dialog;
}

// Asks before something that cannot be undone; resolves true only when `confirmLabel` is pressed.
export function confirmAction(title, message, confirmLabel) {
  return new Promise((resolve) => {
    let confirmed = false;
    const dialog = openDialog(title, (close) => h("div", {},
      h("p", {}, message),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "danger", onclick: () => { confirmed = true; close(); } }, confirmLabel),
        h("button", { type: "button", onclick: close }, "Cancel"))));
    dialog.addEventListener("close", () => resolve(confirmed));
    // Cancel, not the destructive button, has focus first: Enter right away must not delete.
    dialog.querySelector(".actions button:last-child").focus();
  });
}

// A dialog holding a form: closes when the form's submit succeeds.
export function formDialog(title, submitLabel, fields, onSubmit) {
  return openDialog(title, (close) => form({
    submitLabel,
    onSubmit: async (element) => {
      await onSubmit(element);
      close();
    },
    extraActions: [h("button", { type: "button", onclick: close }, "Cancel")],
  }, fields));
}

// ---- a secret shown once -------------------------------------------------------------------------------
// A secret the API answers once (an API key, a webhook's signing secret): a read-only field to select, a
// Copy button, the warning; `dismiss()` on Done, after which focus goes back to the screen's heading.
export function oneTimeSecret({ title, label, value, warning, details, dismiss }) {
  const secret = h("input", { name: "secret", class: "secret", readonly: true, value, spellcheck: "false",
    autocomplete: "off" });
  const copied = h("p", { class: "hint copy-result", role: "status" });
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value);
      copied.textContent = "Copied to the clipboard.";
    } catch {
      // No clipboard (a page not served over https, or permission refused): the secret is selected instead.
      secret.focus();
      secret.select();
      copied.textContent = "It is selected: press Ctrl+C (⌘C) to copy it.";
    }
  };
  const headingId = uid("secret-heading");
  return h("section", { class: "panel secret-panel", "aria-labelledby": headingId },
    h("h2", { id: headingId, tabindex: "-1" }, title),
    h("p", { class: "notice", role: "alert" }, warning),
    field(label, secret, details),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "primary", onclick: copy }, "Copy"),
      h("button", { type: "button", onclick: () => { dismiss(); document.querySelector("main h1")?.focus(); } },
        "Done")),
    copied);
}
