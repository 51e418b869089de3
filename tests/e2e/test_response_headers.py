"""What every answer of the gateway carries (issue 25): API answers are never stored by a browser or a
proxy (`Cache-Control: no-store`: they hold members' emails and balances) nor sniffed into another type,
and a 401 names the scheme to sign in with (RFC 6750 `WWW-Authenticate`), with `invalid_token` when a token
was sent and refused. The console's own files keep their `no-cache`."""
import requests

from tests.e2e.helpers import create_organization, ok, path


def test_api_answers_are_not_stored_or_sniffed(system):
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    for response in (owner.get("/v1/me"), owner.get(path(org, "/members")), owner.get(path(org, "/nothing-here")),
                     owner.post("/v1/organizations", json={"name": ""})):
        assert response.headers["Cache-Control"] == "no-store", response.url
        assert response.headers["X-Content-Type-Options"] == "nosniff", response.url
    ok(owner.get(path(org, "/credits")))
    console = requests.get(f"{system.url}/console/app.js", timeout=30)
    assert console.headers["Cache-Control"] == "no-cache" and console.headers["X-Content-Type-Options"] == "nosniff"


def test_a_401_says_how_to_sign_in(system):
    missing = requests.get(f"{system.url}/v1/me", timeout=30)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_token"
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="orgplatform"'
    refused = requests.get(f"{system.url}/v1/me", headers={"Authorization": "Bearer not-a-token"}, timeout=30)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == \
        'Bearer realm="orgplatform", error="invalid_token", error_description="invalid_token"'
    assert refused.headers["Cache-Control"] == "no-store"
