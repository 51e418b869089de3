"""A request is the gateway and one service: credits, orgs and audit decide from their own read models
of memberships and agents' access (fed by events), which survive their owners being down, follow
revocations within the event lag, refill themselves when empty and rebuild on demand."""
import subprocess
import sys
import time
import uuid

from sqlalchemy import delete, select

from common.db import Store
from common.rpc import RPC_TIMEOUT_SECONDS
from devtools.system import ROOT
from services.credits.models import READ_MODELS as CREDITS_READ_MODELS
from tests.e2e.helpers import create_agent, create_organization, join, ok, path, wait_for


def spend(api, org_id, agent_id, amount="0.5"):
    return api.post(path(org_id, "/usage"), json={"agent_id": agent_id, "amount": amount},
                    headers={"Idempotency-Key": uuid.uuid4().hex})


def team(system):
    """An organization with credit and an agent assigned to a member who joined through an invitation."""
    owner = system.user("owner")
    org = create_organization(owner, "Read models")["id"]
    ok(owner.post(path(org, "/credits/grants"), json={"amount": "100", "type": "paid"}), 201)
    agent = create_agent(owner, org, "Helper")["id"]
    member = join(system, owner, org, ["member"])
    ok(owner.put(path(org, f"/agents/{agent}/assignees/{member.id}")), 201)
    return owner, org, agent, member


def test_a_spend_needs_neither_orgs_nor_members(system, figure):
    owner, org, agent, member = team(system)
    ok(spend(member, org, agent), 201)                  # the read models hold the facts by now
    system.stop("orgs")
    system.stop("members")
    try:
        ok(spend(member, org, agent), 201)
        assert spend(member, org, agent, "1000").json()["error"]["code"] == "insufficient_credits"
        started = time.monotonic()
        refused = owner.get(path(org, "/agents"))        # orgs' own route: it is down
        waited = time.monotonic() - started
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "service_unavailable"
        assert "orgs" in refused.json()["error"]["message"]
        # Refused from the broker's consumer count (about a second), not after the 10 s RPC time-out.
        assert waited < RPC_TIMEOUT_SECONDS - 2, waited
        figure(f"a route of a stopped service refused after {waited:.2f} s ({system.backend})")
    finally:
        system.start("members")
        system.start("orgs")
        system.wait_healthy()


def test_refusal_follows_removal_and_unassignment(system):
    owner, org, agent, member = team(system)
    ok(spend(member, org, agent), 201)
    ok(owner.delete(path(org, f"/agents/{agent}/assignees/{member.id}")), 204)
    wait_for(lambda: spend(member, org, agent).status_code in (403, 404), timeout=5,
             message="a spend refused after the unassignment")
    ok(owner.put(path(org, f"/agents/{agent}/assignees/{member.id}")), 201)
    ok(spend(member, org, agent), 201)                  # re-assigned: confirmed with orgs at once
    assert owner.delete(path(org, f"/members/{member.id}")).status_code == 204
    wait_for(lambda: spend(member, org, agent).status_code == 404, timeout=5,
             message="a spend refused after the removal")


def facts(store, models):
    with store.read() as session:
        memberships = sorted((f.organization_id, f.user_id, tuple(sorted(f.roles)), f.version)
                             for f in session.scalars(select(models.memberships).where(models.memberships.active)))
        agents = sorted((a.agent_id, a.organization_id, tuple(a.contributors), tuple(a.assignees), a.version)
                        for a in session.scalars(select(models.agents).where(models.agents.active)))
        return memberships, agents


def retired_organizations(store):
    with store.read() as session:
        return set(session.scalars(select(CREDITS_READ_MODELS.retired.organization_id)))


def test_a_rebuild_gives_the_rows_the_events_gave(system):
    team(system)
    time.sleep(1)                                       # earlier tests' last events have arrived
    store = Store(system.database_url("credits"))
    before = facts(store, CREDITS_READ_MODELS)
    result = subprocess.run([sys.executable, "-m", "common.readmodels", "rebuild", "credits"], env=system.env,
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "memberships rebuilt" in result.stdout and "agents rebuilt" in result.stdout
    after = facts(store, CREDITS_READ_MODELS)
    # The snapshot holds live memberships only: those of deleted organizations (retired here, but
    # still stored as they were) are not in it.
    retired = retired_organizations(store)
    assert after[0] == [f for f in before[0] if f[0] not in retired]
    assert after[1] == before[1]


def test_an_empty_read_model_is_filled_when_its_service_starts(system):
    """As after the upgrade that introduced read models: the tables exist but hold nothing."""
    owner, org, agent, member = team(system)
    store = Store(system.database_url("credits"))
    wait_for(lambda: facts(store, CREDITS_READ_MODELS)[0], message="credits' facts")
    system.stop("credits")
    with store.write() as session:
        for model in (CREDITS_READ_MODELS.memberships, CREDITS_READ_MODELS.agents, CREDITS_READ_MODELS.filled):
            session.execute(delete(model))
    system.start("credits")
    system.wait_healthy()                               # /health waits for the fill
    assert any(f[:2] == (org, member.id) for f in facts(store, CREDITS_READ_MODELS)[0])
    ok(spend(member, org, agent), 201)
