"""Downloads: a list followed page by page to its end, written as CSV (members, the audit trail) or JSON
(the audit trail)."""
import csv
import io
import json
import re

from werkzeug.wrappers import Response

from common.timeutil import iso, utcnow
from gateway.http import json_response
from gateway.rate_limits import rate_limits

EXPORT_MAX_ROWS = 10000

MEMBER_CSV_COLUMNS = ["user_id", "name", "email", "roles", "budget_group_id", "joined_at"]
AUDIT_CSV_COLUMNS = ["occurred_at", "event_id", "type", "entity_type", "entity_id", "action", "actor_id",
                     "actor_email", "field", "old_value", "new_value"]


def every_page(organization_id, fetch):
    """Follow next_cursor from the first page; at most EXPORT_MAX_ROWS items (downloads). Counted towards
    the organization's download limit (gateway.rate_limits) once the first page came back: the service
    checked the caller's right to it, so a stranger cannot use up an organization's downloads."""
    items, cursor = [], None
    while len(items) < EXPORT_MAX_ROWS:
        page = fetch(cursor)
        if cursor is None:
            rate_limits.count_export(organization_id)
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    return items[:EXPORT_MAX_ROWS]


def members_csv(org_id, members):
    """The members download: `members` as dumped by the Member schema."""
    rows = ([m["user_id"], m["name"], m["email"], " ".join(m["roles"]), m["budget_group_id"] or "", m["joined_at"]]
            for m in members)
    return csv_download(f"members-{org_id}.csv", MEMBER_CSV_COLUMNS, rows)


def audit_download(org_id, export, entries, checkpoints=(), complete=False):
    """The audit trail download, `export` "json" or "csv": `entries` as dumped by the AuditEntry schema. The
    JSON one is what the offline verifier reads (services/audit/chain.py): the entries with their hashes, the
    organization's signed checkpoints, and whether it is the whole chain."""
    filename = f"audit-{org_id}.{export}"
    if export == "json":
        document = {"organization_id": org_id, "exported_at": iso(utcnow()), "complete": complete,
                    "entries": entries, "checkpoints": list(checkpoints)}
        return json_response(document, headers=_attachment(filename))
    return csv_download(filename, AUDIT_CSV_COLUMNS, audit_rows(entries))


def audit_rows(entries):
    """A CSV row per changed field (one, with an empty field, for an entry without changes)."""
    for e in entries:
        for change in e["changes"] or [{"field": "", "old_value": None, "new_value": None}]:
            yield [e["occurred_at"], e["event_id"], e["type"], e["entity_type"], e["entity_id"], e["action"],
                   e["actor"].get("id"), e["actor"].get("email", ""), change["field"],
                   plain_value(change["old_value"]), plain_value(change["new_value"])]


def plain_value(value):
    """A changed value as a spreadsheet cell: text as it is, empty for null, true/false, numbers as written,
    a list of plain values separated by ", ", anything else (an object) as JSON. (The JSON download keeps
    every value exactly; this one is for reading.)"""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, list) and all(isinstance(item, (str, int, float)) and not isinstance(item, bool)
                                       for item in value):
        return ", ".join(str(item) for item in value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def csv_download(filename, header, rows):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([spreadsheet_safe(cell) for cell in row] for row in rows)
    return Response(out.getvalue(), headers=_attachment(filename), mimetype="text/csv")


# What makes a spreadsheet read a cell as a formula (OWASP "CSV injection"): these first characters, or
# their full-width forms, which some spreadsheets fold to them.
FORMULA_STARTS = "=+-@\t\r\uff1d\uff0b\uff0d\uff20"
# A `;` before one of them: a spreadsheet that splits on `;` (most European locales) starts a cell there,
# also past spaces and quotes (`x;"=cmd…` is written `x;""=cmd…`, which splits into an empty quoted text
# and `=cmd…`).
_FORMULA_AFTER_SEPARATOR = re.compile(f"(;[ \"]*)(?=[{re.escape(FORMULA_STARTS)}])")


def spreadsheet_safe(cell):
    """Text a spreadsheet would run as a formula (a member named "=HYPERLINK(...)", or "x;=cmd|...") gets an
    apostrophe before it, at the start of the cell and after any `;` that would start a cell in a spreadsheet
    splitting on `;`, so opening a download cannot execute what a user typed into their name."""
    if not isinstance(cell, str):
        return cell
    cell = _FORMULA_AFTER_SEPARATOR.sub(r"\1'", cell)
    if cell.lstrip(" ")[:1] in tuple(FORMULA_STARTS):
        return "'" + cell
    return cell


def _attachment(filename):
    return {"Content-Disposition": f'attachment; filename="{filename}"'}
