"""A request told 503 is never applied later (issue 24, common.deadlines): orgs frozen (SIGSTOP) while
renames wait for it past the gateway's RPC time-out, every one answered 503, then thawed: none of them is
applied afterwards (orgs drops those it had taken before it froze, the broker expires the ones still
queued), no audit entry names them, and the name stays the last one that answered 200. Before deadlines,
all of them were applied a moment after orgs resumed."""
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from common.rpc import RPC_TIMEOUT_SECONDS
from tests.e2e.helpers import audit_entries, create_organization, ok, wait_for

pytestmark = pytest.mark.parametrize("system", ["sqlite"], indirect=True)

RENAMES_WHILE_FROZEN = 4


def renamed_to(client, org):
    return sorted(e["changes"][0]["new_value"] for e in audit_entries(client, org, entity_type="organization")
                  if e["type"] == "organization.renamed")


def test_renames_answered_503_while_orgs_was_frozen_are_never_applied(system, figure):
    alice = system.user("alice")
    org = create_organization(alice, "Before the freeze")["id"]
    ok(alice.patch(f"/v1/organizations/{org}", json={"name": "Last answered 200"}))
    wait_for(lambda: renamed_to(alice, org) == ["Last answered 200"], message="the rename's audit entry")

    orgs = system.processes["orgs"]
    os.kill(orgs.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(RENAMES_WHILE_FROZEN) as pool:
            answers = list(pool.map(lambda n: alice.patch(f"/v1/organizations/{org}", json={"name": f"Frozen {n}"}),
                                    range(RENAMES_WHILE_FROZEN)))
        waited = time.monotonic() - started
    finally:
        os.kill(orgs.pid, signal.SIGCONT)
    assert [a.status_code for a in answers] == [503] * RENAMES_WHILE_FROZEN, [a.text for a in answers]
    assert {a.json()["error"]["code"] for a in answers} == {"service_unavailable"}
    assert waited >= RPC_TIMEOUT_SECONDS - 1

    # Thawed: what orgs had taken before it froze reaches its workers now, past the deadline.
    system.wait_healthy(timeout=30)
    ok(alice.patch(f"/v1/organizations/{org}", json={"name": "After the thaw"}))   # orgs serves again
    trail = wait_for(lambda: (lambda names: names if "After the thaw" in names else None)(renamed_to(alice, org)),
                     message="the rename after the thaw in the trail")
    time.sleep(1)                                   # a late rename would have been applied by now
    trail = renamed_to(alice, org)
    figure(f"orgs frozen {waited:.1f} s under {RENAMES_WHILE_FROZEN} renames: all 503; applied afterwards: "
           f"{[name for name in trail if name.startswith('Frozen')]}")
    assert trail == ["After the thaw", "Last answered 200"], trail
    assert ok(alice.get(f"/v1/organizations/{org}"))["name"] == "After the thaw"
