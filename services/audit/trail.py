"""The audit trail: every change event as an entry with its changed fields (added once, by reactions.py),
chained per organization as it is stored (link: chain.py's hash chain), and the two queries over it (the
organization's trail, one agent's trail), filtered and cursor-paged, newest first. The filters come loaded
by the entrypoints' declared input (schemas.AuditFiltersInput, schemas.AgentTrailFiltersInput:
common.contracts.audit's rules, an empty filter being none)."""
import functools
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, case, insert, or_, select, update
from sqlalchemy.orm import noload

from common.auth import canonical_email
from common.errors import agent_not_found
from common.events import entry_of, stored_changes
from common.paging import Keyset, check_limit, desc, keyset_page
from common.sql import conflict_insert
from common.timeutil import utcnow
from services.audit import chain
from services.audit.models import AuditChange, AuditEntry, ChainHead
from services.audit.schemas import agent_trail_row, audit_entry_schema

ENTRIES, CHANGES, HEADS = AuditEntry.__table__, AuditChange.__table__, ChainHead.__table__
NEWEST_FIRST = Keyset("audit", desc("at", AuditEntry.occurred_at, datetime), desc("seq", AuditEntry.seq, int))
# The agent's trail: a row per changed field, so the change's id ends the keys.
NEWEST_CHANGE_FIRST = Keyset("agent_audit", desc("at", AuditEntry.occurred_at, datetime),
                             desc("seq", AuditEntry.seq, int), desc("change", AuditChange.id, int))


def entry(event):
    """The columns of a checked change event's entry (common.events.parse_change_event): the record of the
    event in the audit service's inbox (reactions.py), made with its changes in one transaction."""
    return {"event_id": event["event_id"], "type": event["type"], "action": event["action"],
            "entity_type": event["target"]["type"], "entity_id": event["target"]["id"],
            "actor_id": event["actor"]["id"], "actor_email": event["actor"].get("email"),
            "actor_name": event["actor"].get("name"), "organization_id": event["organization_id"],
            "correlation_id": event["correlation_id"], "occurred_at": event["occurred_at"], "received_at": utcnow()}


# The entry a change belongs to, found by its event's id (unique): its seq comes from the INSERT of a whole
# batch's entries at once.
_ENTRY_OF_EVENT = select(ENTRIES.c.seq).where(ENTRIES.c.event_id == bindparam("entry_event_id")).scalar_subquery()


def add_changes(session, event):
    """Add the changed fields of the event's entry (stored already, in the caller's transaction), in the
    order they are hashed (common.events.stored_changes). Plain INSERTs, not ORM objects: every change of
    the system passes here, and the unit of work cost more than the statements."""
    changes = change_rows(event)
    if changes:
        session.execute(insert(CHANGES).values(entry_seq=_ENTRY_OF_EVENT), changes)


def change_rows(event):
    """The rows of the event's changed fields (audit_changes, found by their entry's event id)."""
    return [dict(change, entry_event_id=event["event_id"], old_text=as_text(change["old_value"]),
                 new_text=as_text(change["new_value"]))
            for change in stored_changes(event)]


# ---- the hash chain (chain.py) ------------------------------------------------------------------------
def chain_of(organization_id):
    """The chain an entry belongs to: its organization's, or "" for the entries without one."""
    return organization_id or ""


def hashed_entry(event, seq, prev_hash):
    """The entry of `event` at `seq` of its chain as the API answers it (schemas.AuditEntrySchema), which is
    what its hash covers: computed from the event, before it is stored, as the stored row will read back."""
    return {"seq": seq, "prev_hash": prev_hash, **entry_of(event)}


class ChainMoved(Exception):
    """A chain's head is not where this process last saw it: another audit process appended to it."""


def _lock_head(session, chain_id):
    """The head of a chain, locked until the transaction ends (created at seq 0 the first time): an upsert
    that changes nothing takes the row lock on PostgreSQL and answers the head in one round trip."""
    statement = (conflict_insert(session)(HEADS).values(chain_id=chain_id, seq=0, hash=chain.GENESIS,
                                                        checkpointed_seq=0)
                 .on_conflict_do_update(index_elements=[HEADS.c.chain_id], set_={"seq": HEADS.c.seq})
                 .returning(HEADS.c.seq, HEADS.c.hash))
    return tuple(session.execute(statement).one())


@functools.cache
def _move_heads(count):
    """The statement that moves `count` chains' heads (chain_<i> from seen_<i> to seq_<i>, hash_<i>), each only
    from where it was seen: a head not answered is one another process moved. Built once per count."""
    def each(name):
        return case(*((HEADS.c.chain_id == bindparam(f"chain_{i}"), bindparam(f"{name}_{i}")) for i in range(count)))
    chains = [bindparam(f"chain_{i}") for i in range(count)]
    return (update(HEADS).where(HEADS.c.chain_id.in_(chains), HEADS.c.seq == each("seen"))
            .values(seq=each("seq"), hash=each("hash")).returning(HEADS.c.chain_id))


@dataclass
class Stamped:
    """A delivery's entries with their places in their chains: the inbox's rows, and the heads before and
    after (`absent`: chains that had no head row yet)."""
    rows: list
    before: dict
    after: dict
    absent: set


class Chains:
    """Where new entries go in their organizations' chains (chain.py). The heads this process last wrote are
    kept in memory, so that a delivery costs its chains one statement (one audit process is the usual case):
    each head is moved only from where it was seen, and an entry's place is unique per chain, so a head
    another process moved meanwhile fails the delivery (ChainMoved, or a unique key), which is then stored
    again with the heads read and locked in the database (`locked`)."""

    def __init__(self):
        self.heads = {}

    def forget(self):
        self.heads.clear()

    def know(self, events):
        """Whether this process knows the heads of every chain the events go to (and none is new)."""
        return all(chain_of(e["organization_id"]) in self.heads for e in events)

    def stamp(self, session, events, locked=False):
        """The inbox rows of `events` (trail.entry's, with chain_seq, prev_hash and hash), in this order."""
        chain_ids = sorted({chain_of(e["organization_id"]) for e in events})
        absent = set()
        if locked:          # in the chains' order: two processes never wait for each other in a cycle
            before = {chain_id: _lock_head(session, chain_id) for chain_id in chain_ids}
        else:
            unknown = [chain_id for chain_id in chain_ids if chain_id not in self.heads]
            if unknown:
                found = {row.chain_id: (row.seq, row.hash) for row in session.execute(
                    select(HEADS.c.chain_id, HEADS.c.seq, HEADS.c.hash).where(HEADS.c.chain_id.in_(unknown)))}
                absent = set(unknown) - set(found)
                self.heads.update(found)
            before = {chain_id: self.heads.get(chain_id, (0, chain.GENESIS)) for chain_id in chain_ids}
        after, rows = dict(before), []
        for event in events:
            chain_id = chain_of(event["organization_id"])
            seq, previous = after[chain_id]
            entry_hash = chain.entry_hash(hashed_entry(event, seq + 1, previous))
            rows.append(dict(entry(event), chain_seq=seq + 1, prev_hash=previous, hash=entry_hash))
            after[chain_id] = (seq + 1, entry_hash)
        return Stamped(rows, before, after, absent)

    def move(self, session, stamped):
        """Move the heads to where the delivery's entries will take them, from where they were seen, before
        the entries are inserted; ChainMoved if another process moved one meanwhile (the caller's transaction
        then rolls back). Heads are taken in the chains' order, as the locked way takes them, and entries
        are inserted only once their heads are held: two audit processes never wait for each other in a
        cycle (PostgreSQL would end one of them with a deadlock)."""
        def chain_params(chain_id, i=0):
            return {f"chain_{i}": chain_id, f"seen_{i}": stamped.before[chain_id][0],
                    f"seq_{i}": stamped.after[chain_id][0], f"hash_{i}": stamped.after[chain_id][1]}

        chain_ids = sorted(stamped.after)
        if stamped.absent:          # a chain's first entries (rare): each chain in turn, in order
            for chain_id in chain_ids:
                if chain_id in stamped.absent:
                    moved = session.scalars(conflict_insert(session)(HEADS).values(
                        chain_id=chain_id, seq=stamped.after[chain_id][0], hash=stamped.after[chain_id][1],
                        checkpointed_seq=0).on_conflict_do_nothing().returning(HEADS.c.chain_id)).all()
                else:
                    moved = session.scalars(_move_heads(1), chain_params(chain_id)).all()
                if not moved:
                    raise ChainMoved()
            return
        parameters = {}
        for i, chain_id in enumerate(chain_ids):
            parameters.update(chain_params(chain_id, i))
        # One statement for all of them; PostgreSQL locks the rows in the primary key's order.
        if len(session.scalars(_move_heads(len(chain_ids)), parameters).all()) != len(chain_ids):
            raise ChainMoved()

    def remember(self, stamped):
        """The delivery was committed: its heads are where this process goes on from."""
        self.heads.update(stamped.after)


def as_text(value):
    """A changed value as searchable text: strings as they are, anything else as JSON."""
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _entry_conditions(filters):
    """Conditions on an entry's own columns, common to the organization's and an agent's trail."""
    conditions = []
    if "entity_type" in filters:
        conditions.append(AuditEntry.entity_type == filters["entity_type"])
    if "action" in filters:
        conditions.append(AuditEntry.action == filters["action"])
    if "actor" in filters:
        actor = filters["actor"]
        # Emails are stored in their canonical form (common.auth.canonical_email); search by the same.
        email = canonical_email(actor) or actor.lower()
        conditions.append(or_(AuditEntry.actor_id == actor, AuditEntry.actor_email == email))
    if "since" in filters:
        conditions.append(AuditEntry.occurred_at >= filters["since"])
    if "until" in filters:
        conditions.append(AuditEntry.occurred_at < filters["until"])
    return conditions


def query_entries(store, organization_id, filters=None, cursor=None, limit=None):
    """A page of the organization's trail, newest first (`filters` as schemas.AuditFiltersInput loaded them;
    None: no filters)."""
    filters = filters or {}
    conditions = [AuditEntry.organization_id == organization_id, *_entry_conditions(filters)]
    if "target" in filters:
        conditions.append(AuditEntry.entity_id == filters["target"])
    if "field" in filters:
        conditions.append(AuditEntry.changes.any(AuditChange.field == filters["field"]))
    with store.read() as session:
        return keyset_page(session, select(AuditEntry).where(*conditions), NEWEST_FIRST, cursor, limit,
                           dump=audit_entry_schema.dump)


AGENT_TRAIL_DEFAULT_LIMIT = 20


def query_agent_trail(store, organization_id, agent_id, filters=None, cursor=None, limit=None):
    """The agent's trail in this organization: one row per changed field, newest first, 20 per page
    unless `limit` says otherwise (product rules §6). `filters` as schemas.AgentTrailFiltersInput loaded them
    (None: no filters).

    Only what happened to the agent while it belonged to this organization is shown: after a transfer
    each organization keeps its own part of the history (like spend made before a transfer)."""
    filters = filters or {}
    limit = check_limit(limit, default=AGENT_TRAIL_DEFAULT_LIMIT)
    NEWEST_CHANGE_FIRST.position(cursor)    # a bad cursor is refused before the agent is looked up
    of_agent = [AuditEntry.organization_id == organization_id, AuditEntry.entity_type == "agent",
                AuditEntry.entity_id == agent_id]
    conditions = [*of_agent, *_entry_conditions(filters)]
    if "field" in filters:
        conditions.append(AuditChange.field == filters["field"])
    for name, column in (("old_value", AuditChange.old_text), ("new_value", AuditChange.new_text)):
        if name in filters:
            conditions.append(column.icontains(filters[name], autoescape=True))
    with store.read() as session:
        if session.scalar(select(AuditEntry.seq).where(*of_agent).limit(1)) is None:
            raise agent_not_found()   # no agent of this organization ever had this id
        query = (select(AuditEntry, AuditChange).join(AuditChange, AuditChange.entry_seq == AuditEntry.seq)
                 .options(noload(AuditEntry.changes)).where(*conditions))
        return keyset_page(session, query, NEWEST_CHANGE_FIRST, cursor, limit, dump=lambda row: agent_trail_row(*row))
