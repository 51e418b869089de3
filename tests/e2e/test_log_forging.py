"""No client can write a log line of its own (issue 25): values that came from a client reach the logs
escaped by the one formatter (common/framework/log_format.py), whatever the way in. Each attempt below
carries a forged record, a line break then a timestamp; afterwards no line of any process's log starts
with that timestamp. And no full email address is written at INFO."""
import re
import uuid

import requests
from sqlalchemy import update

from common.db import Store
from services.members.models import OrganizationFact
from tests.e2e.helpers import create_organization, invite, ok, path, wait_for

FORGED_AT = "1999-12-31 23:59:59,999"


def forged(marker):
    return f"Acme\n{FORGED_AT} ERROR common.mail [forged]: {marker}"


def test_no_client_value_makes_a_log_line_of_its_own(system):
    marker = uuid.uuid4().hex
    owner = system.user("owner")
    org = create_organization(owner, "Before the rule")["id"]
    # A name stored before the readable-name rule (the rule now refuses it with a 422): in the members
    # service's read model of organizations, from which an invitation's email takes the name.
    assert owner.patch(path(org), json={"name": forged(marker)}).status_code == 422
    with Store(system.database_url("members")).write() as session:
        session.execute(update(OrganizationFact).where(OrganizationFact.organization_id == org)
                        .values(name=forged(marker)))
    email = f"forging-{marker[:8]}@example.com"
    invitation = invite(owner, org, email, ["member"])
    # Paths, query strings and headers a client chooses, some of which are logged on refusal.
    encoded = forged(marker).replace("\n", "%0A").replace(" ", "%20")
    requests.get(f"{system.url}/v1/organizations/{encoded}", timeout=10)
    owner.get(f"/v1/organizations?cursor={encoded}")
    owner.get(path(org, f"/{encoded}"))
    requests.get(f"{system.url}/v1/me", headers={"Authorization": f"Bearer {encoded}"}, timeout=10)
    ok(owner.get("/v1/me", headers={"X-Request-Id": forged(marker).replace("\n", "\\n")}))

    def logs():
        return {log.name: log.read_text(errors="replace") for log in system.log_dir.glob("*.log")}
    # The invitation's email (logged, as no SMTP is configured) with the escaped name.
    wait_for(lambda: f"/v1/invitations/{invitation['id']}/accept" in logs().get("members.log", ""),
             message="the invitation's email in the members log")
    text = "\n".join(logs().values())
    assert f"Acme\\n{FORGED_AT} ERROR common.mail [forged]: {marker}" in text
    assert not [line for line in text.splitlines() if line.startswith(FORGED_AT)]
    assert email not in text and f"{email[0]}***@example.com" in text
    assert not re.search(r"\bforging-\w+@example\.com", text)
