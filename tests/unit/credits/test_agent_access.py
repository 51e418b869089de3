"""The right to use an agent as credits decides it from its read models (services/credits/agent_access.py):
the rules of product rules §2 ("use agents"), with orgs' codes for its agents."""
import pytest

from common.errors import Forbidden, NotFound
from common.event_types import ORGANIZATION_DELETED
from common.events import change_event
from services.credits.agent_access import refusal_of
from services.credits.models import READ_MODELS
from tests.unit.credits.facts import ADMIN_ACTOR, AGENT, ORG, OTHER_ORG, agent, deliver, member


@pytest.fixture
def store(make_store):
    return make_store("credits")


def refusal(store, user_id="bob", organization_id=ORG, agent_id=AGENT):
    with store.read() as session:
        found = refusal_of(session, READ_MODELS, user_id, organization_id, agent_id)
    return None if found is None else (type(found), found.code, found.message)


ALLOWED = None
AGENT_NOT_FOUND = (NotFound, "agent_not_found", "Agent not found.")
NO_AGENTS = (Forbidden, "forbidden", "Your roles in this organization do not allow using agents.")
NOT_A_MEMBER = (NotFound, "organization_not_found", "Organization not found.")

PLACES = {"assignee": {"assignees": ["bob"]}, "contributor": {"contributors": ["bob"]},
          "both": {"assignees": ["bob"], "contributors": ["bob"]}, "neither": {}}

MATRIX = [
    (["owner"], "neither", ALLOWED),
    (["admin"], "neither", ALLOWED),
    (["owner", "billing"], "neither", ALLOWED),
    (["builder"], "contributor", ALLOWED),
    (["builder"], "assignee", ALLOWED),
    (["builder"], "neither", AGENT_NOT_FOUND),
    (["member"], "assignee", ALLOWED),
    (["member", "billing"], "assignee", ALLOWED),
    (["member"], "contributor", AGENT_NOT_FOUND),     # a contributor who lost Builder
    (["member"], "neither", AGENT_NOT_FOUND),
    (["billing"], "assignee", NO_AGENTS),
    (["billing"], "both", NO_AGENTS),
]


@pytest.mark.parametrize(("roles", "place", "expected"), MATRIX)
def test_who_may_use_which_agent(store, roles, place, expected):
    member(store, "bob", roles)
    agent(store, **PLACES[place])
    assert refusal(store) == expected


def test_roles_that_use_no_agents_are_refused_before_the_agent_is_looked_at(store):
    member(store, "bob", ["billing"])
    assert refusal(store, agent_id="no-such-agent") == NO_AGENTS


@pytest.mark.parametrize("agent_id", ["no-such-agent", None, "", "a" * 65, 7])
def test_an_unknown_agent_is_not_found_even_for_an_owner(store, agent_id):
    member(store, "bob", ["owner"])
    agent(store)
    assert refusal(store, agent_id=agent_id) == AGENT_NOT_FOUND


def test_another_organizations_or_a_deleted_agent_is_not_found(store):
    member(store, "bob", ["owner"])
    agent(store, "theirs", org=OTHER_ORG)
    agent(store, "gone", active=False)
    assert refusal(store, agent_id="theirs") == AGENT_NOT_FOUND
    assert refusal(store, agent_id="gone") == AGENT_NOT_FOUND


def test_a_non_member_or_a_removed_member_gets_organization_not_found(store):
    agent(store, assignees=["bob", "carl"])
    member(store, "carl", ["member"], active=False)
    assert refusal(store, user_id="bob") == NOT_A_MEMBER
    assert refusal(store, user_id="carl") == NOT_A_MEMBER
    assert refusal(store, user_id=None) == NOT_A_MEMBER
    assert refusal(store, organization_id=None) == NOT_A_MEMBER


def test_nobody_uses_the_agents_of_a_deleted_organization(store):
    member(store, "bob", ["owner"])
    agent(store)
    deliver(store, change_event(ORGANIZATION_DELETED, "delete", ORG, ADMIN_ACTOR, "organization", ORG))
    assert refusal(store) == NOT_A_MEMBER
