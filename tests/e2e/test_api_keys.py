"""Organization API keys over HTTP (SPEC §9), both backends: an Owner or Admin creates a key and sees its
secret once; the list never shows a secret; revoking ends it; creating and revoking are in the audit
trail without the secret; a Member may not manage keys, a stranger cannot see the organization."""
from tests.e2e.helpers import audit_entries, create_organization, error_code, join, ok, wait_for


def test_a_key_is_created_listed_and_revoked_and_its_secret_shown_once(system):
    owner = system.user("owner")
    org = create_organization(owner, "Keys")["id"]
    keys = f"/v1/organizations/{org}/api-keys"
    created = ok(owner.post(keys, json={"name": "Agent runtime", "scopes": ["usage:write", "usage:read"]}), 201)
    secret = created["key"]
    assert secret.startswith(f"opk_{created['id']}_") and created["status"] == "active"
    [listed] = ok(owner.get(keys))["items"]
    assert listed["id"] == created["id"] and "key" not in listed and secret not in str(listed)
    assert listed["prefix"].startswith(f"opk_{created['id']}_")
    assert ok(owner.delete(f"{keys}/{created['id']}"))["status"] == "revoked"
    assert ok(owner.get(keys))["items"][0]["status"] == "revoked"
    assert error_code(owner.delete(f"{keys}/no-such-key"), 404) == "api_key_not_found"
    entries = wait_for(lambda: (lambda found: found if len(found) == 2 else None)(
        audit_entries(owner, org, entity_type="api_key")), timeout=20, message="two api_key entries")
    assert sorted(e["type"] for e in entries) == ["api_key.created", "api_key.revoked"]
    secret_part = secret[len(f"opk_{created['id']}_"):]              # the part only the caller may know
    assert secret not in str(entries) and secret_part not in str(entries)
    for log in system.log_dir.glob("*.log"):                      # no secret in any log either
        assert secret_part not in log.read_text(errors="replace"), log.name


def test_only_owners_and_admins_manage_keys_and_bad_fields_are_refused(system):
    owner = system.user("owner")
    org = create_organization(owner, "Guarded keys")["id"]
    keys = f"/v1/organizations/{org}/api-keys"
    member = join(system, owner, org, ["member"])
    admin = join(system, owner, org, ["admin"], "admin")
    ok(admin.post(keys, json={"name": "By an Admin", "scopes": ["audit:read"]}), 201)
    assert error_code(member.post(keys, json={"name": "Mine", "scopes": ["usage:write"]}), 403) == "forbidden"
    assert error_code(member.get(keys), 403) == "forbidden"
    assert error_code(system.user("stranger").get(keys), 404) == "organization_not_found"
    for body, field in (({"scopes": ["usage:write"]}, "name"), ({"name": "X", "scopes": []}, "scopes"),
                        ({"name": "X", "scopes": ["root"]}, "scopes"),
                        ({"name": "X", "scopes": ["usage:read"], "expires_at": "2000-01-01T00:00:00Z"}, "expires_at")):
        response = owner.post(keys, json=body)
        assert response.status_code == 422 and response.json()["error"]["field"] == field, response.text
    assert len(ok(owner.get(keys))["items"]) == 1
