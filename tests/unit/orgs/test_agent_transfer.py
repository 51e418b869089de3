"""Moving an agent to another organization (services/orgs/agent_transfer.py) over a migrated SQLite
store: the requirements, the dry run's report, the move and its two trail entries."""
import pytest

from common.errors import Forbidden, NotFound, ValidationFailed
from services.orgs import agent_people, agent_transfer, agents, organizations
from tests.unit.orgs.helpers import ADMIN, BUILDER, MEMBER, OWNER, committed, events, new_agent, stored, types


# ---- transfer --------------------------------------------------------------------------------------------
def check(**changes):
    args = dict(source_roles=OWNER, destination_roles=BUILDER, organization_id="o1", destination_id="o2",
                dry_run=True)
    args.update(changes)
    agent_transfer.check_transfer(**args)


def test_check_transfer_passes_when_all_requirements_hold():
    check()
    check(source_roles=ADMIN, destination_roles=["owner"], dry_run=False)


@pytest.mark.parametrize("changes, error, code", [
    ({"dry_run": "yes"}, ValidationFailed, "invalid_type"),
    ({"dry_run": None}, ValidationFailed, "invalid_type"),
    ({"dry_run": 1}, ValidationFailed, "invalid_type"),
    ({"source_roles": BUILDER}, Forbidden, "source_role_required"),
    ({"source_roles": ["member", "billing"]}, Forbidden, "source_role_required"),
    ({"destination_id": "o1"}, ValidationFailed, "same_organization"),
    ({"destination_roles": None}, NotFound, "destination_not_found"),
    ({"destination_roles": MEMBER}, Forbidden, "destination_role_required"),
    ({"destination_roles": ["member", "billing"]}, Forbidden, "destination_role_required"),
    ({"destination_roles": []}, Forbidden, "destination_role_required"),
])
def test_each_transfer_requirement_has_its_own_error(changes, error, code):
    with pytest.raises(error) as err:
        check(**changes)
    assert err.value.code == code


@pytest.fixture
def move(store, org, alice, bob):
    """An agent in `org` with contributors bob, carl and assignees mira, dora; a destination `dest`."""
    dest = committed(store, organizations.create_collective, alice, "Destination")["id"]
    agent = new_agent(store, org, bob, BUILDER, name="Mover")["id"]
    committed(store, agent_people.add_contributor, alice, OWNER, org, agent, "carl", BUILDER)
    committed(store, agent_people.assign, alice, OWNER, org, agent, "mira", MEMBER)
    committed(store, agent_people.assign, alice, OWNER, org, agent, "dora", MEMBER)
    people_roles = {"bob": ["builder"], "mira": ["member"], "dora": []}     # carl: not a member there
    return dest, agent, people_roles


def outcomes(people):
    return {p["user_id"]: p["outcome"] for p in people}


def test_transfer_dry_run_reports_and_changes_nothing(store, org, alice, move):
    dest, agent, people_roles = move
    before = stored(store, agent)
    count = len(events(store))
    report = committed(store, agent_transfer.transfer_agent, alice, OWNER, OWNER, org, agent, dest, True, people_roles)
    assert report["dry_run"] is True and report["correlation_id"] is None
    assert (report["agent_id"], report["name"]) == (agent, "Mover")
    assert (report["source_organization_id"], report["destination_organization_id"]) == (org, dest)
    assert report["contributors"] == [
        {"user_id": "bob", "destination_roles": ["builder"], "outcome": "will retain access"},
        {"user_id": "carl", "destination_roles": [], "outcome": "will be removed"}]
    assert outcomes(report["assignees"]) == {"mira": "will retain access", "dora": "will be removed"}
    assert stored(store, agent) == before
    assert len(events(store)) == count
    assert agents.get_agent(store, alice, OWNER, org, agent)["organization_id"] == org


def test_transfer_moves_the_agent(store, org, alice, bob, move):
    dest, agent, people_roles = move
    report = committed(store, agent_transfer.transfer_agent, alice, OWNER, OWNER, org, agent, dest, False, people_roles)
    assert report["dry_run"] is False and report["correlation_id"] and report["transferred_at"]
    assert outcomes(report["contributors"]) == {"bob": "retained access", "carl": "removed"}
    assert outcomes(report["assignees"]) == {"mira": "retained access", "dora": "removed"}

    moved = agents.get_agent(store, alice, OWNER, dest, agent)
    assert moved["organization_id"] == dest and moved["name"] == "Mover"
    assert (moved["contributors"], moved["assignees"]) == (["bob"], ["mira"])
    assert stored(store, agent)["organization_id"] == dest
    with pytest.raises(NotFound) as err:
        agents.get_agent(store, alice, OWNER, org, agent)
    assert err.value.code == "agent_not_found"
    assert agents.list_agents(store, alice, OWNER, org)["items"] == []
    assert [a["id"] for a in agents.list_agents(store, bob, BUILDER, dest)["items"]] == [agent]

    transferred = [e for e in events(store) if e["type"] == "agent.transferred"]
    assert len(transferred) == 2
    assert {e["organization_id"] for e in transferred} == {org, dest}
    assert {e["correlation_id"] for e in transferred} == {report["correlation_id"]}
    assert transferred[0]["event_id"] != transferred[1]["event_id"]
    for event in transferred:
        assert event["target"] == {"type": "agent", "id": agent} and event["action"] == "update"
        assert event["before"] == {"organization_id": org, "contributors": ["bob", "carl"],
                                   "assignees": ["mira", "dora"]}
        assert event["after"] == {"organization_id": dest, "contributors": ["bob"], "assignees": ["mira"]}


def test_transfer_when_everyone_keeps_access_records_only_the_organization(store, org, alice, move):
    dest, agent, _ = move
    everyone = {"bob": BUILDER, "carl": ["admin"], "mira": MEMBER, "dora": ["member", "billing"]}
    committed(store, agent_transfer.transfer_agent, alice, OWNER, OWNER, org, agent, dest, False, everyone)
    assert stored(store, agent)["contributors"] == ["bob", "carl"]
    assert stored(store, agent)["assignees"] == ["mira", "dora"]
    event = events(store)[-1]
    assert (event["before"], event["after"]) == ({"organization_id": org}, {"organization_id": dest})


def test_builder_only_requester_is_added_as_contributor(store, org, alice, move):
    dest, agent, people_roles = move
    dry = committed(store, agent_transfer.transfer_agent, alice, OWNER, BUILDER, org, agent, dest, True, people_roles)
    assert dry["contributors"][-1] == {"user_id": "alice", "destination_roles": ["builder"],
                                       "outcome": "will be added"}
    assert "alice" not in stored(store, agent)["contributors"]
    done = committed(store, agent_transfer.transfer_agent, alice, OWNER, BUILDER, org, agent, dest, False, people_roles)
    assert outcomes(done["contributors"]) == {"bob": "retained access", "carl": "removed", "alice": "added"}
    assert stored(store, agent)["contributors"] == ["bob", "alice"]
    # They can see (and edit) what they moved.
    assert agents.get_agent(store, alice, BUILDER, dest, agent)["permissions"][0] == "edit"
    assert events(store)[-1]["after"]["contributors"] == ["bob", "alice"]


def test_owner_requester_in_destination_is_not_added(store, org, alice, move):
    dest, agent, people_roles = move
    for roles in (OWNER, ["admin", "builder"]):
        report = committed(store, agent_transfer.transfer_agent, alice, OWNER, roles, org, agent, dest, True,
                           people_roles)
        assert "alice" not in outcomes(report["contributors"])


def test_builder_requester_already_contributing_is_not_added_twice(store, org, alice, move):
    dest, agent, people_roles = move
    committed(store, agent_people.add_contributor, alice, OWNER, org, agent, "alice", ["owner", "builder"])
    report = committed(store, agent_transfer.transfer_agent, alice, OWNER, BUILDER, org, agent, dest, False,
                                   dict(people_roles, alice=BUILDER))
    assert outcomes(report["contributors"])["alice"] == "retained access"
    assert stored(store, agent)["contributors"] == ["bob", "alice"]


def test_transfer_to_deleted_or_unknown_destination(store, org, alice, move):
    dest, agent, people_roles = move
    committed(store, organizations.delete, alice, dest)
    for destination in (dest, "no-such-org"):
        for dry_run in (True, False):
            with pytest.raises(NotFound) as err:
                committed(store, agent_transfer.transfer_agent, alice, OWNER, OWNER, org, agent, destination, dry_run,
                                              people_roles)
            assert err.value.code == "destination_not_found"
    assert stored(store, agent)["organization_id"] == org
    assert "agent.transferred" not in types(store)


def test_transfer_checks_requirements_first(store, org, alice, move):
    dest, agent, people_roles = move
    with pytest.raises(Forbidden) as err:
        committed(store, agent_transfer.transfer_agent, alice, BUILDER, OWNER, org, agent, dest, False, people_roles)
    assert err.value.code == "source_role_required"
    with pytest.raises(ValidationFailed) as err:
        committed(store, agent_transfer.transfer_agent, alice, OWNER, OWNER, org, agent, org, False, people_roles)
    assert err.value.code == "same_organization"
    with pytest.raises(NotFound) as err:
        committed(store, agent_transfer.transfer_agent, alice, OWNER, OWNER, org, "no-such-agent", dest, False,
                  people_roles)
    assert err.value.code == "agent_not_found"
    assert stored(store, agent)["organization_id"] == org
