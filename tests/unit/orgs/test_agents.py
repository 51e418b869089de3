"""Agents (services/orgs/agents.py) as plain domain functions over a migrated SQLite store: the caller's
roles are passed in, as the entrypoints do after asking the members service."""
import pytest

from common import idempotency
from common.contracts import load
from common.contracts.agents import AgentInput
from common.errors import Conflict, Forbidden, NotFound, ValidationFailed
from services.orgs import agent_people, agents, organizations
from services.orgs.models import IdempotentRequest
from tests.unit.orgs.helpers import (
    ADMIN,
    BILLING,
    BUILDER,
    CARL,
    DAVE,
    ERIN,
    MEMBER,
    MIRA,
    OWNER,
    committed,
    edit_agent,
    events,
    keyed,
    new_agent,
    refused,
    stored,
    types,
)


# ---- the agent's input contract (common.contracts.agents, declared by the entrypoints) ---------------------
def clean_fields(data, creating):
    return load(AgentInput, data, partial=not creating)


@pytest.mark.parametrize("data", [{}, {"name": ""}, {"name": "   "}, {"name": None}, {"code": "x"}])
def test_name_is_required_on_create(data):
    with pytest.raises(ValidationFailed) as err:
        clean_fields(data, creating=True)
    assert (err.value.code, err.value.field) == ("name_required", "name")


def test_fields_are_trimmed():
    assert clean_fields({"name": "  Nurse Bot ", "code": "\tnb-1\n", "mission": " help "}, creating=True) \
        == {"name": "Nurse Bot", "code": "nb-1", "mission": "help"}


@pytest.mark.parametrize("field, limit", sorted(agents.FIELD_LIMITS.items()))
def test_each_field_has_its_length_limit(field, limit):
    filler = "https://e.com/" if field == "avatar_url" else ""
    at_limit = filler + "a" * (limit - len(filler))
    data = {"name": "n", field: "  " + at_limit + "  "}   # counted after trimming
    assert clean_fields(data, creating=True)[field] == at_limit
    with pytest.raises(ValidationFailed) as err:
        clean_fields({"name": "n", field: at_limit + "a"}, creating=True)
    assert (err.value.code, err.value.field) == ("too_long", field)


@pytest.mark.parametrize("data, field", [({"name": 42}, "name"), ({"name": "n", "mission": ["x"]}, "mission"),
                                         ({"name": "n", "instructions": {"a": 1}}, "instructions"),
                                         ({"name": "n", "code": True}, "code")])
def test_fields_must_be_strings(data, field):
    with pytest.raises(ValidationFailed) as err:
        clean_fields(data, creating=True)
    assert (err.value.code, err.value.field) == ("invalid_type", field)


@pytest.mark.parametrize("data", [None, "name", ["name"]])
def test_body_must_be_an_object(data):
    with pytest.raises(ValidationFailed) as err:
        clean_fields(data, creating=True)
    assert err.value.code == "invalid_type"


def test_unknown_field_is_refused_and_named():
    with pytest.raises(ValidationFailed) as err:
        clean_fields({"name": "n", "colour": "red"}, creating=True)
    assert (err.value.code, err.value.field) == ("unknown_field", "colour")
    with pytest.raises(ValidationFailed) as err:
        clean_fields({"organization_id": "o2"}, creating=False)
    assert (err.value.code, err.value.field) == ("unknown_field", "organization_id")


@pytest.mark.parametrize("url", ["ftp://example.com/a.png", "javascript:alert(1)", "example.com/a.png",
                                 "https://", "http://exa mple.com/a.png", "data:image/png;base64,AAAA",
                                 "http://[::1", "https://[not-an-address]/a.png"])   # urlsplit raises on these
def test_avatar_must_be_an_http_url(url):
    with pytest.raises(ValidationFailed) as err:
        clean_fields({"name": "n", "avatar_url": url}, creating=True)
    assert (err.value.code, err.value.field) == ("invalid_url", "avatar_url")


@pytest.mark.parametrize("url, expected", [("https://cdn.example.com/a.png", "https://cdn.example.com/a.png"),
                                           (" http://example.com/a ", "http://example.com/a"),
                                           ("", None), ("   ", None), (None, None)])
def test_valid_or_empty_avatar(url, expected):
    assert clean_fields({"name": "n", "avatar_url": url}, creating=True)["avatar_url"] == expected
    assert clean_fields({"avatar_url": url}, creating=False) == {"avatar_url": expected}


def test_patch_needs_no_name_but_cannot_empty_it():
    assert clean_fields({"mission": "m"}, creating=False) == {"mission": "m"}
    assert clean_fields({}, creating=False) == {}
    for name in ("", "  ", None):
        with pytest.raises(ValidationFailed) as err:
            clean_fields({"name": name}, creating=False)
        assert err.value.code == "name_required"


# ---- create ----------------------------------------------------------------------------------------------
def test_builder_becomes_first_contributor(store, org, bob):
    agent = new_agent(store, org, bob, BUILDER)
    assert agent["contributors"] == ["bob"] and agent["created_by"] == "bob"
    assert agent["organization_id"] == org and agent["assignees"] == []
    assert "edit" in agent["permissions"] and "delete" not in agent["permissions"]


def test_owner_without_builder_is_not_a_contributor(store, org, alice):
    agent = new_agent(store, org, alice, OWNER)
    assert agent["contributors"] == []
    assert set(agent["permissions"]) >= {"edit", "delete", "manage_access", "transfer", "view_audit", "use"}
    # An Owner who also holds Builder is recorded as contributor.
    assert new_agent(store, org, alice, ["owner", "builder"])["contributors"] == ["alice"]


@pytest.mark.parametrize("roles", [MEMBER, BILLING, ["member", "billing"], []])
def test_only_owner_admin_builder_create(store, org, bob, roles):
    assert refused(store, org, bob, roles, "create_agent", {"name": "Helper"}) == "forbidden"
    assert events(store, "") == [e for e in events(store, "") if e["type"] != "agent.created"]
    assert agents.list_agents(store, bob, OWNER, org)["items"] == []


def test_create_records_one_event_with_config_and_contributors(store, org, bob):
    agent = new_agent(store, org, bob, BUILDER, name=" Nurse ", code="n1", mission="care",
                      welcome_message="hi", instructions="be kind", avatar_url="https://x.example/a.png")
    [event] = events(store)
    assert event["type"] == "agent.created" and event["action"] == "create"
    assert event["before"] == {}
    assert event["after"] == {"name": "Nurse", "code": "n1", "mission": "care", "welcome_message": "hi",
                              "instructions": "be kind", "avatar_url": "https://x.example/a.png",
                              "contributors": ["bob"]}
    assert event["target"] == {"type": "agent", "id": agent["id"]}
    assert event["organization_id"] == org
    assert event["actor"] == {"id": "bob", "email": "bob@example.com"}


def test_unset_fields_are_empty_and_left_out_of_the_event(store, org, alice):
    agent = new_agent(store, org, alice)
    assert (agent["code"], agent["mission"], agent["instructions"], agent["avatar_url"]) == ("", "", "", None)
    # Fields left empty are not part of the creation event (they would be noise rows in the trail).
    assert events(store)[0]["after"] == {"name": "Helper", "contributors": []}


def test_idempotency_key_replays_the_first_agent(store, org, bob):
    first = keyed(store, bob, "k1", agents.create_agent, BUILDER, org, {"name": "Once"})
    again = keyed(store, bob, "k1", agents.create_agent, BUILDER, org, {"name": "Once"})
    assert again == dict(first, idempotent_replayed=True)
    with pytest.raises(Conflict) as reused:                       # the same key with another body
        keyed(store, bob, "k1", agents.create_agent, BUILDER, org, {"name": "Twice"})
    assert (reused.value.code, reused.value.field) == ("idempotency_key_reused", "Idempotency-Key")
    with store.read() as session:                                   # keys are per user
        assert idempotency.find_replay(session, IdempotentRequest, CARL.id, "k1", "any") is None
    assert [a["id"] for a in agents.list_agents(store, bob, OWNER, org)["items"]] == [first["id"]]
    assert types(store) == ["agent.created"]


# Regression: two concurrent requests with the same Idempotency-Key (possible on PostgreSQL, where both
# transactions can miss each other's not yet committed key) made the second one fail with an
# IntegrityError (a 500) instead of replaying the first answer. Simulated by letting the second
# request's lookup miss.
def test_concurrent_duplicate_with_same_key_gets_the_first_answer(store, org, bob, monkeypatch):
    first = keyed(store, bob, "k1", agents.create_agent, BUILDER, org, {"name": "Once"})
    real, calls = idempotency.find_replay, []

    def lookup_that_misses_once(*args):
        calls.append(args)
        return None if len(calls) == 1 else real(*args)

    monkeypatch.setattr(idempotency, "find_replay", lookup_that_misses_once)
    again = keyed(store, bob, "k1", agents.create_agent, BUILDER, org, {"name": "Once"})
    assert again == dict(first, idempotent_replayed=True)
    monkeypatch.undo()
    assert [a["id"] for a in agents.list_agents(store, bob, OWNER, org)["items"]] == [first["id"]]
    assert types(store) == ["agent.created"]


def test_create_in_deleted_organization_is_not_found(store, org, alice):
    committed(store, organizations.delete, alice, org)
    with pytest.raises(NotFound):
        new_agent(store, org, alice)
    with pytest.raises(NotFound):
        new_agent(store, "no-such-org", alice)
    assert events(store) == []


# ---- update ----------------------------------------------------------------------------------------------
def test_update_records_only_changed_fields(store, org, alice):
    agent = new_agent(store, org, alice, name="A", mission="old")
    updated = edit_agent(store, alice, OWNER, org, agent["id"],
                                  {"name": " A ", "mission": "new", "code": "", "instructions": "do"})
    assert (updated["name"], updated["mission"], updated["instructions"]) == ("A", "new", "do")
    event = events(store)[-1]
    assert event["type"] == "agent.updated" and event["action"] == "update"
    assert event["before"] == {"mission": "old", "instructions": ""}
    assert event["after"] == {"mission": "new", "instructions": "do"}
    assert event["target"] == {"type": "agent", "id": agent["id"]}
    assert agents.get_agent(store, alice, OWNER, org, agent["id"])["mission"] == "new"


def test_noop_update_records_nothing(store, org, alice):
    agent = new_agent(store, org, alice, name="A", mission="m", avatar_url="https://e.com/a")
    same = edit_agent(store, alice, OWNER, org, agent["id"],
                               {"name": "A ", "mission": " m", "avatar_url": "https://e.com/a"})
    assert same["updated_at"] == agent["updated_at"]
    assert edit_agent(store, alice, OWNER, org, agent["id"], {})["name"] == "A"
    assert types(store) == ["agent.created"]


def test_clearing_the_avatar(store, org, alice):
    agent = new_agent(store, org, alice, avatar_url="https://e.com/a")
    assert edit_agent(store, alice, OWNER, org, agent["id"], {"avatar_url": ""})["avatar_url"] is None
    event = events(store)[-1]
    assert (event["before"], event["after"]) == ({"avatar_url": "https://e.com/a"}, {"avatar_url": None})


def test_bad_update_changes_nothing(store, org, alice):
    agent = new_agent(store, org, alice, name="A")
    for data in ({"name": ""}, {"code": "x" * 101}, {"colour": "red"}):
        with pytest.raises(ValidationFailed):
            edit_agent(store, alice, OWNER, org, agent["id"], data)
    assert agents.get_agent(store, alice, OWNER, org, agent["id"])["name"] == "A"
    assert types(store) == ["agent.created"]


def test_who_may_edit(store, org, alice, bob):
    agent = new_agent(store, org, bob, BUILDER, name="Mine")["id"]
    committed(store, agent_people.assign, alice, OWNER, org, agent, "carl", BUILDER)
    committed(store, agent_people.assign, alice, OWNER, org, agent, "mira", MEMBER)
    # contributing Builder: may edit
    assert edit_agent(store, bob, BUILDER, org, agent, {"mission": "by bob"})["mission"] == "by bob"
    # Admin: may edit any
    assert edit_agent(store, DAVE, ADMIN, org, agent, {"code": "d"})["code"] == "d"
    # Builder assigned but not contributing: sees it, may not edit
    assert agents.get_agent(store, CARL, BUILDER, org, agent)["permissions"] == ["use"]
    with pytest.raises(Forbidden):
        edit_agent(store, CARL, BUILDER, org, agent, {"mission": "by carl"})
    # Member assigned: sees it, may not edit
    with pytest.raises(Forbidden):
        edit_agent(store, MIRA, MEMBER, org, agent, {"mission": "by mira"})
    # Member not assigned: does not even see it
    with pytest.raises(NotFound):
        edit_agent(store, ERIN, MEMBER, org, agent, {"mission": "by erin"})
    assert agents.get_agent(store, alice, OWNER, org, agent)["mission"] == "by bob"
    assert types(store).count("agent.updated") == 2


# ---- delete ----------------------------------------------------------------------------------------------
def test_only_owner_or_admin_deletes(store, org, alice, bob):
    agent = new_agent(store, org, bob, BUILDER, name="Doomed", mission="m")["id"]
    assert refused(store, org, bob, BUILDER, "delete_agent", agent) == "forbidden"     # contributing Builder
    assert stored(store, agent)["deleted"] is False
    result = committed(store, agents.delete_agent, alice, OWNER, org, agent)
    assert result["id"] == agent and result["deleted_at"]
    with pytest.raises(NotFound) as err:
        agents.get_agent(store, alice, OWNER, org, agent)
    assert err.value.code == "agent_not_found"
    with pytest.raises(NotFound):
        committed(store, agents.delete_agent, alice, OWNER, org, agent)        # not twice
    assert agents.list_agents(store, alice, OWNER, org)["items"] == []
    [deleted] = [e for e in events(store) if e["type"] == "agent.deleted"]
    assert deleted["action"] == "delete" and deleted["after"] == {}
    assert deleted["before"]["name"] == "Doomed" and deleted["before"]["contributors"] == ["bob"]
    assert deleted["target"] == {"type": "agent", "id": agent}


def test_admin_deletes_too(store, org, alice):
    agent = new_agent(store, org, alice)["id"]
    committed(store, agents.delete_agent, DAVE, ADMIN, org, agent)
    assert stored(store, agent)["deleted"] is True
