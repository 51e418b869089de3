"""Moving an agent to another organization (product rules §6): a move, not a copy, with a dry run that reports
per contributor and assignee whether they keep access. Contributors keep their place if they hold
Owner, Admin or Builder in the destination, assignees if they are members there at all.

The entrypoint reads the membership facts of both organizations first (the caller's roles there, then
the roles of the agent's people, from people_of()), from orgs' read model; the move re-reads the agent
under a row lock.
"""
import uuid

from common.errors import Forbidden, NotFound, ValidationFailed
from common.events import changed_fields
from common.permissions import Role
from common.timeutil import iso, utcnow
from services.orgs.agent_states import access_changed, access_of
from services.orgs.agents import sees_every_agent, visible_agent
from services.orgs.events import AGENT_TRANSFERRED, emit
from services.orgs.models import AgentContributor
from services.orgs.organizations import get_live

ROLES_THAT_KEEP_CONTRIBUTING = {Role.OWNER.value, Role.ADMIN.value, Role.BUILDER.value}

WILL_RETAIN, WILL_BE_REMOVED, WILL_BE_ADDED = "will retain access", "will be removed", "will be added"
PAST_TENSE = {WILL_RETAIN: "retained access", WILL_BE_REMOVED: "removed", WILL_BE_ADDED: "added"}


def destination_not_found():
    return NotFound("Destination organization not found.", code="destination_not_found",
                    field="destination_organization_id")


def is_another_organization(organization_id, destination_id):
    """Whether the caller's roles in the destination are worth asking for (check_transfer refuses the
    rest without them)."""
    return isinstance(destination_id, str) and destination_id != organization_id


def check_transfer(source_roles, destination_roles, organization_id, destination_id, dry_run):
    """The requirements of product rules §6 that do not need the database, each with its own error.
    `destination_roles` is None when the caller is not a member of the destination."""
    if not isinstance(dry_run, bool):
        raise ValidationFailed("dry_run must be true or false.", code="invalid_type", field="dry_run")
    if not sees_every_agent(source_roles):
        raise Forbidden("Only an Owner or Admin of the agent's organization can transfer it.",
                        code="source_role_required")
    if destination_id == organization_id:
        raise ValidationFailed("The agent already belongs to this organization.", code="same_organization",
                               field="destination_organization_id")
    if destination_roles is None:
        raise destination_not_found()
    if not set(destination_roles) & ROLES_THAT_KEEP_CONTRIBUTING:
        raise Forbidden("You need the Owner, Admin or Builder role in the destination organization.",
                        code="destination_role_required")


def people_of(session, identity, roles, organization_id, agent_id):
    """Ids of the agent's contributors and assignees (the entrypoint asks the destination about them)."""
    agent = visible_agent(session, identity, roles, organization_id, agent_id)
    people = access_of(agent)
    return list(dict.fromkeys(people["contributors"] + people["assignees"]))


def transfer_outcomes(agent, requester_id, requester_destination_roles, people_roles):
    """Per contributor and assignee, what the move does to their access. `people_roles`: roles in the
    destination per user id (absent = not a member there, or not known: removed, the safe side)."""
    contributors = []
    for user_id in access_of(agent)["contributors"]:
        roles = people_roles.get(user_id) or []
        keeps = bool(set(roles) & ROLES_THAT_KEEP_CONTRIBUTING)
        contributors.append({"user_id": user_id, "destination_roles": roles,
                             "outcome": WILL_RETAIN if keeps else WILL_BE_REMOVED})
    # A Builder (not Owner/Admin) who brings the agent along becomes a contributor there; otherwise
    # they could not see what they just moved (**decision**).
    if (Role.BUILDER.value in requester_destination_roles and not sees_every_agent(requester_destination_roles)
            and requester_id not in [c["user_id"] for c in contributors]):
        contributors.append({"user_id": requester_id, "destination_roles": list(requester_destination_roles),
                             "outcome": WILL_BE_ADDED})
    assignees = [{"user_id": user_id, "destination_roles": people_roles.get(user_id) or [],
                  "outcome": WILL_RETAIN if people_roles.get(user_id) else WILL_BE_REMOVED}
                 for user_id in access_of(agent)["assignees"]]
    return contributors, assignees


def transfer_agent(session, identity, source_roles, destination_roles, organization_id, agent_id, destination_id,
                   dry_run, people_roles, now=None):
    """Dry run: the report of what a move would do. Otherwise move the agent (not a copy) in one
    transaction, dropping contributors and assignees who lose access; both organizations' trails get
    one entry with a shared correlation id."""
    check_transfer(source_roles, destination_roles, organization_id, destination_id, dry_run)
    agent = visible_agent(session, identity, source_roles, organization_id, agent_id, for_update=not dry_run)
    try:
        get_live(session, destination_id, for_update=not dry_run)
    except NotFound:
        raise destination_not_found()
    contributors, assignees = transfer_outcomes(agent, identity.id, destination_roles, people_roles)
    report = {"agent_id": agent.id, "name": agent.name, "source_organization_id": organization_id,
              "destination_organization_id": destination_id, "dry_run": dry_run,
              "contributors": contributors, "assignees": assignees, "correlation_id": None}
    if dry_run:
        return report
    now = now or utcnow()
    before = dict(organization_id=organization_id, **access_of(agent))
    kept = {c["user_id"] for c in contributors if c["outcome"] != WILL_BE_REMOVED}
    for row in [c for c in agent.contributors if c.user_id not in kept]:
        agent.contributors.remove(row)
    if any(c["outcome"] == WILL_BE_ADDED for c in contributors):
        agent.contributors.append(AgentContributor(user_id=identity.id, added_by=identity.id, added_at=now))
    kept = {a["user_id"] for a in assignees if a["outcome"] == WILL_RETAIN}
    for row in [a for a in agent.assignees if a.user_id not in kept]:
        agent.assignees.remove(row)
    agent.organization_id, agent.updated_at = destination_id, now
    session.flush()
    after = dict(organization_id=destination_id, **access_of(agent))
    changed_before, changed_after = changed_fields(before, after)
    correlation_id = str(uuid.uuid4())
    state = access_changed(agent)        # one change, told to both organizations' trails
    for org in (organization_id, destination_id):
        emit(session, AGENT_TRANSFERRED, "update", org, identity, "agent", agent.id,
             before=changed_before, after=changed_after, correlation_id=correlation_id, state=state)
    for person in contributors + assignees:
        person["outcome"] = PAST_TENSE[person["outcome"]]
    return dict(report, correlation_id=correlation_id, transferred_at=iso(now))
