"""Helpers for end-to-end tests."""
import time

from common.db import Store
from services.audit import trail as audit_trail


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
        page = audit_trail.query_entries(store, org_id, cursor=cursor, limit=200)
        entries += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return entries


def types_of(entries):
    return sorted(e["type"] for e in entries)


def ok(response, status=200):
    """The JSON body of a response that must have `status`."""
    assert response.status_code == status, f"{response.request.method} {response.url}: {response.text}"
    return response.json() if response.content else None


def error_code(response, status):
    assert response.status_code == status, f"{response.request.method} {response.url}: {response.text}"
    return response.json()["error"]["code"]


def create_organization(api, name="Sehat Clinic"):
    return ok(api.post("/v1/organizations", json={"name": name}), 201)


def invite(api, org_id, email, roles, **extra):
    return ok(api.post(f"/v1/organizations/{org_id}/invitations", json=dict(email=email, roles=roles, **extra)), 201)


def join(system, inviter, org_id, roles, label="member"):
    """A brand-new user who joins the organization through an invitation from `inviter`."""
    newcomer = system.user(label)
    invitation = invite(inviter, org_id, newcomer.email, roles)
    ok(newcomer.post(f"/v1/invitations/{invitation['id']}/accept"))
    return newcomer


def hand_billing_to(holder, org_id, recipient):
    transfer = ok(holder.post(f"/v1/organizations/{org_id}/billing-transfers", json={"to_user_id": recipient.id}), 201)
    return ok(recipient.post(f"/v1/organizations/{org_id}/billing-transfers/{transfer['id']}/accept"))


def card_of(api, org_id):
    return next((c for c in ok(api.get("/v1/organizations"))["items"] if c["id"] == org_id), None)


def card_becomes(api, org_id, **expected):
    """The organization card in `api`'s list once it shows `expected`: the list is answered by orgs from
    its read model of memberships, which follows members' changes within the event lag."""
    def settled():
        card = card_of(api, org_id)
        return card if card and all(card[key] == value for key, value in expected.items()) else None
    return wait_for(settled, message=f"the card of {org_id} showing {expected}")


def create_agent(api, org_id, name="Triage nurse", **fields):
    return ok(api.post(f"/v1/organizations/{org_id}/agents", json=dict(name=name, **fields)), 201)


def agent_names(api, org_id, **params):
    return sorted(a["name"] for a in ok(api.get(f"/v1/organizations/{org_id}/agents", params=params))["items"])


def path(org_id, rest=""):
    """The API path of an organization, or of `rest` under it."""
    return f"/v1/organizations/{org_id}{rest}"


def metrics_page(url):
    """{(sample name, ((label, value), ...)): value} of a Prometheus text page (common.metrics)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = answer.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def metric(page, name, **labels):
    """A sample's value in a metrics_page (0 when absent)."""
    return page.get((name, tuple(sorted(labels.items()))), 0.0)
