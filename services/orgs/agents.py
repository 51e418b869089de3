"""Domain logic of agents (SPEC §6), beside domain.py (organizations) in the orgs service, which owns
agents because an agent belongs to an organization, not to a person.

Plain functions over a `Store`, callable without a broker. Membership facts belong to the members
service: the entrypoints fetch them over RPC first (the caller's roles, other people's roles) and
pass them in; no RPC call happens inside a write transaction.

Who may do what, from the caller's roles in the agent's organization (common.permissions):
- see: Owner/Admin every agent; a Builder the agents they contribute to or are assigned; a Member the
  agents assigned to them (a Billing-only member sees none: an assignment takes effect if they later
  get the Member role). An agent the caller cannot see answers 404, like an unknown id.
- edit: Owner/Admin any; a Builder the agents they contribute to. Create: Owner/Admin/Builder.
- delete, contributors, assignees, transfer, the agent's trail: Owner/Admin (**decision** for delete:
  the agent is the organization's property, so a contributor may change it but not destroy it).
- use (spend credit through it): Owner/Admin any; a Builder if assigned or contributor; a Member if
  assigned.

Every change is one change event (target: the agent), so the agent's trail lists configuration
fields, `contributors` and `assignees` alike, one row per changed field.
"""
import uuid
from urllib.parse import urlsplit

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.exc import IntegrityError

from common import idempotency, outbox
from common.errors import Conflict, Forbidden, NotFound, ValidationFailed
from common.events import change_event, changed_fields
from common.paging import check_limit, decode_cursor, encode_cursor, invalid_cursor
from common.permissions import Action, Role, allows
from common.timeutil import iso, utcnow
from services.orgs.domain import get_live
from services.orgs.models import Agent, AgentAssignee, AgentContributor, IdempotentRequest, OutboxEvent

# Configuration fields and their length limits (characters).
FIELD_LIMITS = {"name": 200, "code": 100, "mission": 2000, "welcome_message": 2000,
                "instructions": 20000, "avatar_url": 2048}
CONFIG_FIELDS = tuple(FIELD_LIMITS)
ROLES_THAT_KEEP_CONTRIBUTING = {Role.OWNER.value, Role.ADMIN.value, Role.BUILDER.value}

WILL_RETAIN, WILL_BE_REMOVED, WILL_BE_ADDED = "will retain access", "will be removed", "will be added"
PAST_TENSE = {WILL_RETAIN: "retained access", WILL_BE_REMOVED: "removed", WILL_BE_ADDED: "added"}


# ---- errors ------------------------------------------------------------------------------------------
def agent_not_found():
    return NotFound("Agent not found.", code="agent_not_found", field="agent_id")


def member_not_found():
    return NotFound("There is no such member in this organization.", code="member_not_found", field="user_id")


def _forbidden(message, code="forbidden"):
    return Forbidden(message, code=code)


# ---- input -------------------------------------------------------------------------------------------
def clean_fields(data, creating):
    """The agent's configuration from a request body: strings trimmed and within their limits, the
    avatar an http(s) URL. `name` is required on create and cannot be emptied later."""
    if not isinstance(data, dict):
        raise ValidationFailed("The agent must be an object of fields.", code="invalid_type")
    unknown = sorted(set(data) - set(CONFIG_FIELDS))
    if unknown:
        raise ValidationFailed(f"Unknown field: {unknown[0]}.", code="unknown_field", field=unknown[0])
    cleaned = {}
    for name, value in data.items():
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise ValidationFailed(f"{name} must be a string.", code="invalid_type", field=name)
        value = value.strip()
        if len(value) > FIELD_LIMITS[name]:
            raise ValidationFailed(f"{name} must be {FIELD_LIMITS[name]} characters or fewer.",
                                   code="too_long", field=name)
        cleaned[name] = value
    if creating or "name" in cleaned:
        if not cleaned.get("name"):
            raise ValidationFailed("Agent name is required.", code="name_required", field="name")
    if cleaned.get("avatar_url"):
        parts = urlsplit(cleaned["avatar_url"])
        if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in cleaned["avatar_url"]):
            raise ValidationFailed("avatar_url must be an http or https URL.", code="invalid_url", field="avatar_url")
    if "avatar_url" in cleaned:
        cleaned["avatar_url"] = cleaned["avatar_url"] or None
    return cleaned


def clean_user_id(user_id):
    if not isinstance(user_id, str) or not 0 < len(user_id) <= 128:
        raise ValidationFailed("user_id must be a user id.", code="invalid_type", field="user_id")
    return user_id


# ---- access rules --------------------------------------------------------------------------------------
def sees_every_agent(roles):
    return allows(roles, Action.EDIT_ANY_AGENT)


def _is_contributing_builder(roles, agent, user_id):
    return Role.BUILDER.value in roles and _place(agent, "contributors", user_id) is not None


def _is_assigned(agent, user_id):
    return _place(agent, "assignees", user_id) is not None


def can_see(roles, agent, user_id):
    return (sees_every_agent(roles) or _is_contributing_builder(roles, agent, user_id)
            or (_is_assigned(agent, user_id) and allows(roles, Action.USE_GRANTED_AGENTS)))


def can_edit(roles, agent, user_id):
    return allows(roles, Action.EDIT_ANY_AGENT) or (
        allows(roles, Action.EDIT_CONTRIBUTED_AGENTS) and _is_contributing_builder(roles, agent, user_id))


def can_use(roles, agent, user_id):
    return allows(roles, Action.USE_ANY_AGENT) or (
        allows(roles, Action.USE_GRANTED_AGENTS)
        and (_is_assigned(agent, user_id) or _is_contributing_builder(roles, agent, user_id)))


def agent_permissions(roles, agent, user_id):
    """What the caller may do with this agent, for clients to offer (the checks stay server-side)."""
    granted = []
    if can_edit(roles, agent, user_id):
        granted.append("edit")
    if sees_every_agent(roles):
        granted += ["delete", "manage_access", "transfer", "view_audit"]
    if can_use(roles, agent, user_id):
        granted.append("use")
    return granted


def _visible_condition(roles, user_id):
    """SQL form of can_see() for lists."""
    if sees_every_agent(roles):
        return None
    assigned = exists().where(AgentAssignee.agent_id == Agent.id, AgentAssignee.user_id == user_id)
    conditions = []
    if allows(roles, Action.USE_GRANTED_AGENTS):
        conditions.append(assigned)
    if Role.BUILDER.value in roles:
        conditions.append(exists().where(AgentContributor.agent_id == Agent.id, AgentContributor.user_id == user_id))
    return or_(*conditions) if conditions else False


def _check_manage(roles, what):
    if not sees_every_agent(roles):
        raise _forbidden(f"Only an Owner or Admin can {what}.")


# ---- shapes --------------------------------------------------------------------------------------------
def config_of(agent):
    return {name: getattr(agent, name) for name in CONFIG_FIELDS}


def access_of(agent):
    return {"contributors": [c.user_id for c in agent.contributors],
            "assignees": [a.user_id for a in agent.assignees]}


def agent_dict(agent, roles=None, user_id=None):
    body = dict(id=agent.id, organization_id=agent.organization_id, **config_of(agent), **access_of(agent),
                created_by=agent.created_by, created_at=iso(agent.created_at), updated_at=iso(agent.updated_at))
    if roles is not None:
        body["permissions"] = agent_permissions(roles, agent, user_id)
    return body


def _place(agent, kind, user_id):
    """The user's row among the agent's contributors or assignees (`kind`), or None."""
    return next((row for row in getattr(agent, kind) if row.user_id == user_id), None)


def _person(row):
    return {"user_id": row.user_id, "added_by": row.added_by, "added_at": iso(row.added_at)}


# ---- lookups -------------------------------------------------------------------------------------------
def _live_agent(session, organization_id, agent_id, for_update=False):
    """The organization's live agent, whoever asks (access is checked by the caller)."""
    if not isinstance(agent_id, str) or len(agent_id) > 64:
        raise agent_not_found()
    agent = session.get(Agent, agent_id, with_for_update=for_update, populate_existing=for_update)
    if agent is None or agent.deleted_at is not None or agent.organization_id != organization_id:
        raise agent_not_found()
    return agent


def _visible_agent(session, identity, roles, organization_id, agent_id, for_update=False):
    get_live(session, organization_id)
    agent = _live_agent(session, organization_id, agent_id, for_update)
    if not can_see(roles, agent, identity.id):
        raise agent_not_found()      # like an unknown id: agents one cannot see cannot be probed
    return agent


def _record(session, identity, agent, type, action, before, after, organization_id=None, correlation_id=None,
            actor=None):
    outbox.record(session, OutboxEvent, change_event(
        type, action, organization_id or agent.organization_id, actor or identity.as_actor(), "agent", agent.id,
        before=before, after=after, correlation_id=correlation_id))


# ---- agents --------------------------------------------------------------------------------------------
def find_idempotent(store, identity, key):
    with store.read() as session:
        return idempotency.find_replay(session, IdempotentRequest, identity.id, key, "create_agent")


def create_agent(store, identity, roles, organization_id, data, idempotency_key=None, now=None):
    """Create an agent in the organization; a Builder who creates it becomes its first contributor."""
    if not allows(roles, Action.CREATE_AGENTS):
        raise _forbidden("Only an Owner, Admin or Builder can create agents.")
    fields = clean_fields(data, creating=True)
    now = now or utcnow()
    try:
        return _insert_agent(store, identity, roles, organization_id, fields, idempotency_key, now)
    except IntegrityError:
        # Only the idempotency record can collide: a concurrent request with the same key won.
        replay = find_idempotent(store, identity, idempotency_key)
        if replay is None:
            raise
        return replay


def _insert_agent(store, identity, roles, organization_id, fields, idempotency_key, now):
    with store.write() as session:
        replay = idempotency.find_replay(session, IdempotentRequest, identity.id, idempotency_key, "create_agent")
        if replay is not None:
            return replay
        get_live(session, organization_id)
        agent = Agent(id=str(uuid.uuid4()), organization_id=organization_id, created_by=identity.id,
                      created_at=now, updated_at=now, **{name: fields.get(name, "") for name in CONFIG_FIELDS})
        agent.avatar_url = fields.get("avatar_url")
        if Role.BUILDER.value in roles:
            agent.contributors.append(AgentContributor(user_id=identity.id, added_by=identity.id, added_at=now))
        session.add(agent)
        session.flush()
        # Fields left empty are not "changed" by the creation: they would be noise rows in the trail.
        initial = {k: v for k, v in config_of(agent).items() if v not in ("", None)}
        _record(session, identity, agent, "agent.created", "create", {},
                dict(initial, contributors=access_of(agent)["contributors"]))
        result = agent_dict(agent, roles, identity.id)
        idempotency.remember(session, IdempotentRequest, identity.id, idempotency_key, "create_agent", result, now)
        session.flush()
        return result


def list_agents(store, identity, roles, organization_id, q=None, cursor=None, limit=None):
    """The agents the caller can see, by name (case-insensitive), searchable by name; keyset-paged."""
    limit = check_limit(limit)
    if q is not None and (not isinstance(q, str) or len(q) > 200):
        raise ValidationFailed("q must be text of at most 200 characters.", field="q")
    sort_key = func.lower(Agent.name)
    conditions = [Agent.organization_id == organization_id, Agent.deleted_at.is_(None)]
    visible = _visible_condition(roles, identity.id)
    if visible is not None:
        conditions.append(visible)
    if q and q.strip():
        conditions.append(Agent.name.icontains(q.strip(), autoescape=True))
    position = decode_cursor(cursor)
    if position is not None:
        name, last_id = position.get("name"), position.get("id")
        if not (isinstance(name, str) and isinstance(last_id, str)):
            raise invalid_cursor()
        conditions.append(or_(sort_key > name, and_(sort_key == name, Agent.id > last_id)))
    with store.read() as session:
        get_live(session, organization_id)
        rows = session.execute(select(Agent, sort_key).where(*conditions).order_by(sort_key, Agent.id)
                               .limit(limit + 1)).all()
        items = [agent_dict(agent, roles, identity.id) for agent, _ in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        # The database's lower(), not Python's: they differ beyond ASCII on SQLite, and the next
        # page's comparison runs in the database.
        last, last_key = rows[limit - 1]
        next_cursor = encode_cursor({"name": last_key, "id": last.id})
    return {"items": items, "next_cursor": next_cursor}


def get_agent(store, identity, roles, organization_id, agent_id):
    with store.read() as session:
        return agent_dict(_visible_agent(session, identity, roles, organization_id, agent_id), roles, identity.id)


def check_agent_use(store, identity, roles, organization_id, agent_id):
    """Before a spend (asked by credits): may the caller use this agent (SPEC §2 "use agents")?
    A role that uses no agents at all is a 403 before any lookup; an agent they cannot see is a 404."""
    if not (allows(roles, Action.USE_ANY_AGENT) or allows(roles, Action.USE_GRANTED_AGENTS)):
        raise _forbidden("Your roles in this organization do not allow using agents.")
    with store.read() as session:
        agent = _visible_agent(session, identity, roles, organization_id, agent_id)
        if not can_use(roles, agent, identity.id):
            raise _forbidden("You may not use this agent.", code="agent_use_forbidden")
        return {"organization_id": organization_id, "agent_id": agent.id}


def update_agent(store, identity, roles, organization_id, agent_id, data, now=None):
    """Change some configuration fields; the event carries only the fields whose value changed."""
    fields = clean_fields(data, creating=False)
    with store.write() as session:
        agent = _visible_agent(session, identity, roles, organization_id, agent_id, for_update=True)
        if not can_edit(roles, agent, identity.id):
            raise _forbidden("Only an Owner, Admin or a contributing Builder can edit this agent.")
        before, after = changed_fields({k: getattr(agent, k) for k in fields}, fields)
        if before:
            for name, value in after.items():
                setattr(agent, name, value)
            agent.updated_at = now or utcnow()
            _record(session, identity, agent, "agent.updated", "update", before, after)
        return agent_dict(agent, roles, identity.id)


def delete_agent(store, identity, roles, organization_id, agent_id, now=None):
    with store.write() as session:
        _check_manage(roles, "delete an agent")
        agent = _visible_agent(session, identity, roles, organization_id, agent_id, for_update=True)
        now = now or utcnow()
        agent.deleted_at = agent.updated_at = now
        _record(session, identity, agent, "agent.deleted", "delete", dict(config_of(agent), **access_of(agent)), {})
        return {"id": agent.id, "deleted_at": iso(now)}


def check_agent_ids(store, organization_id, agent_ids):
    """Refuse ids that are not live agents of the organization (invitations name agents to assign)."""
    if not agent_ids:
        return []
    with store.read() as session:
        found = set(session.scalars(select(Agent.id).where(
            Agent.id.in_(agent_ids), Agent.organization_id == organization_id, Agent.deleted_at.is_(None))))
    unknown = [a for a in agent_ids if a not in found]
    if unknown:
        raise ValidationFailed(f"No agent {unknown[0]} in this organization.", code="unknown_agent",
                               field="agent_ids", details={"unknown_agent_ids": unknown})
    return list(agent_ids)


# ---- contributors and assignees -----------------------------------------------------------------------
def list_contributors(store, identity, roles, organization_id, agent_id):
    with store.read() as session:
        agent = _visible_agent(session, identity, roles, organization_id, agent_id)
        return {"items": [_person(c) for c in agent.contributors], "next_cursor": None}


def add_contributor(store, identity, roles, organization_id, agent_id, user_id, user_roles, now=None):
    """Make a Builder a contributor. `user_roles`: their roles in the organization, None for a
    non-member. Returns (contributor, created); adding one twice changes nothing."""
    with store.write() as session:
        _check_manage(roles, "manage an agent's contributors")
        agent = _visible_agent(session, identity, roles, organization_id, agent_id, for_update=True)
        if user_roles is None:
            raise member_not_found()
        if Role.BUILDER.value not in user_roles:
            raise ValidationFailed("Only members holding the Builder role can be contributors.",
                                   code="contributor_must_be_builder", field="user_id")
        existing = _place(agent, "contributors", user_id)
        if existing is not None:
            return _person(existing), False
        row = _add_person(session, identity.as_actor(), agent, "contributors", user_id, now or utcnow(),
                          "agent.contributor_added")
        return _person(row), True


def remove_contributor(store, identity, roles, organization_id, agent_id, user_id):
    with store.write() as session:
        _check_manage(roles, "manage an agent's contributors")
        agent = _visible_agent(session, identity, roles, organization_id, agent_id, for_update=True)
        row = _place(agent, "contributors", user_id)
        if row is None:
            raise NotFound("This member is not a contributor of the agent.", code="contributor_not_found",
                           field="user_id")
        if len(agent.contributors) == 1:
            raise Conflict("The last contributor of an agent cannot be removed; add another one first.",
                           code="last_contributor", field="user_id")
        return _remove_person(session, identity, agent, "contributors", row, "agent.contributor_removed")


def assign(store, identity, roles, organization_id, agent_id, user_id, user_roles, now=None):
    """Let a member use the agent. Returns (assignee, created); assigning twice changes nothing."""
    with store.write() as session:
        _check_manage(roles, "assign agents")
        agent = _visible_agent(session, identity, roles, organization_id, agent_id, for_update=True)
        if user_roles is None:
            raise member_not_found()
        existing = _place(agent, "assignees", user_id)
        if existing is not None:
            return _person(existing), False
        row = _add_person(session, identity.as_actor(), agent, "assignees", user_id, now or utcnow(),
                          "agent.assignee_added")
        return _person(row), True


def _add_person(session, actor, agent, kind, user_id, now, event_type, correlation_id=None):
    """Give the user a place among the agent's contributors or assignees (`kind`), with its event."""
    before = access_of(agent)[kind]
    row = (AgentContributor if kind == "contributors" else AgentAssignee)(
        user_id=user_id, added_by=actor["id"], added_at=now)
    getattr(agent, kind).append(row)
    _record(session, None, agent, event_type, "update", {kind: before}, {kind: before + [user_id]},
            actor=actor, correlation_id=correlation_id)
    return row


def unassign(store, identity, roles, organization_id, agent_id, user_id):
    with store.write() as session:
        _check_manage(roles, "assign agents")
        agent = _visible_agent(session, identity, roles, organization_id, agent_id, for_update=True)
        row = _place(agent, "assignees", user_id)
        if row is None:
            raise NotFound("This member is not assigned to the agent.", code="assignee_not_found", field="user_id")
        return _remove_person(session, identity, agent, "assignees", row, "agent.assignee_removed")


def _remove_person(session, identity, agent, kind, row, event_type):
    """Take one contributor or assignee row (`kind`) off the agent, with its event."""
    before = access_of(agent)[kind]
    getattr(agent, kind).remove(row)
    _record(session, identity, agent, event_type, "update", {kind: before},
            {kind: [u for u in before if u != row.user_id]})
    return {"agent_id": agent.id, "user_id": row.user_id}


def people_of(store, identity, roles, organization_id, agent_id):
    """Ids of the agent's contributors and assignees (the entrypoint asks the destination about them)."""
    with store.read() as session:
        agent = _visible_agent(session, identity, roles, organization_id, agent_id)
        people = access_of(agent)
        return list(dict.fromkeys(people["contributors"] + people["assignees"]))


# ---- transfer ------------------------------------------------------------------------------------------
def check_transfer(source_roles, destination_roles, organization_id, destination_id, dry_run):
    """The requirements of SPEC §6 that do not need the database, each with its own error.
    `destination_roles` is None when the caller is not a member of the destination."""
    if not isinstance(dry_run, bool):
        raise ValidationFailed("dry_run must be true or false.", code="invalid_type", field="dry_run")
    if not sees_every_agent(source_roles):
        raise _forbidden("Only an Owner or Admin of the agent's organization can transfer it.",
                         code="source_role_required")
    if destination_id == organization_id:
        raise ValidationFailed("The agent already belongs to this organization.", code="same_organization",
                               field="destination_organization_id")
    if destination_roles is None:
        raise destination_not_found()
    if not set(destination_roles) & ROLES_THAT_KEEP_CONTRIBUTING:
        raise _forbidden("You need the Owner, Admin or Builder role in the destination organization.",
                         code="destination_role_required")


def destination_not_found():
    return NotFound("Destination organization not found.", code="destination_not_found",
                    field="destination_organization_id")


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


def transfer_agent(store, identity, source_roles, destination_roles, organization_id, agent_id, destination_id,
                   dry_run, people_roles, now=None):
    """Dry run: the report of what a move would do. Otherwise move the agent (not a copy) in one
    transaction, dropping contributors and assignees who lose access; both organizations' trails get
    one entry with a shared correlation id."""
    check_transfer(source_roles, destination_roles, organization_id, destination_id, dry_run)
    with (store.read() if dry_run else store.write()) as session:
        agent = _visible_agent(session, identity, source_roles, organization_id, agent_id, for_update=not dry_run)
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
        for org in (organization_id, destination_id):
            _record(session, identity, agent, "agent.transferred", "update", changed_before, changed_after,
                    organization_id=org, correlation_id=correlation_id)
        for person in contributors + assignees:
            person["outcome"] = PAST_TENSE[person["outcome"]]
        return dict(report, correlation_id=correlation_id, transferred_at=iso(now))


# ---- reactions to other services' events (called by domain.handle_change_event, in its transaction) -----
def apply_invitation_agents(session, event, now=None):
    """An accepted invitation's agents are assigned to the newcomer (SPEC §3). Agents deleted or moved
    away since the invitation are skipped, and so are assignments that exist already."""
    after = event.get("after") or {}
    user_id, agent_ids = after.get("user_id"), after.get("agent_ids") or []
    if not isinstance(user_id, str) or not isinstance(agent_ids, list):
        return 0
    assigned = 0
    for agent_id in sorted({a for a in agent_ids if isinstance(a, str)}):   # one lock order: no deadlocks
        agent = session.get(Agent, agent_id, with_for_update=True)
        if (agent is None or agent.deleted_at is not None or agent.organization_id != event["organization_id"]
                or _is_assigned(agent, user_id)):
            continue
        _add_person(session, event["actor"], agent, "assignees", user_id, now or utcnow(), "agent.assignee_added",
                    correlation_id=event["event_id"])
        assigned += 1
    return assigned


def forget_member_access(session, event, contributors_only=False):
    """A member left or was removed (or lost Builder, `contributors_only`): their contributor (and
    assignee) places on the organization's agents go, one event per agent, by the actor of the
    membership change. The last contributor may go this way: the agent stays (SPEC §6)."""
    user_id, organization_id = event["target"]["id"], event["organization_id"]
    changed = 0
    agents = session.scalars(select(Agent).where(
        Agent.organization_id == organization_id, Agent.deleted_at.is_(None),
        or_(Agent.contributors.any(AgentContributor.user_id == user_id),
            Agent.assignees.any(AgentAssignee.user_id == user_id))).order_by(Agent.id).with_for_update()).all()
    for agent in agents:
        before = access_of(agent)
        agent.contributors = [c for c in agent.contributors if c.user_id != user_id]
        if not contributors_only:
            agent.assignees = [a for a in agent.assignees if a.user_id != user_id]
        changed_before, changed_after = changed_fields(before, access_of(agent))
        if changed_before:
            _record(session, None, agent, "agent.access_revoked", "update", changed_before, changed_after,
                    actor=event["actor"], correlation_id=event["event_id"])
            changed += 1
    return changed
