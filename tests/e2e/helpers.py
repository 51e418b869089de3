"""Helpers for end-to-end tests."""
import time

from common.db import Store
from services.audit import domain as audit_domain


def wait_for(predicate, timeout=20, interval=0.2, message="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def audit_entries(api, org_id, **filters):
    """Every entry of the organization's trail visible to `api` (pages followed)."""
    entries, cursor = [], None
    while True:
        params = dict(filters, limit=200, **({"cursor": cursor} if cursor else {}))
        response = api.get(f"/v1/organizations/{org_id}/audit", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        entries += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            return entries


def stored_entries(system, org_id):
    """Entries straight from the audit service's database (for trails nobody can read any more,
    such as a deleted organization's)."""
    store = Store(system.database_url("audit"))
    entries, cursor = [], None
    while True:
        page = audit_domain.query_entries(store, org_id, cursor=cursor, limit=200)
        entries += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return entries


def types_of(entries):
    return sorted(e["type"] for e in entries)
