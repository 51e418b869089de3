"""The hash chain as the audit service stores it (trail.Chains, checkpoints.py) over a migrated SQLite store:
entries chained per organization in the transaction that stores them, checkpoints signed when a head moved,
tampering in the database found by verify_chain, and the migration chaining entries stored before it
exactly as the service does."""
import importlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, select, text, update

from common.config import ConfigError
from common.events import change_event, parse_change_event
from services.audit import chain, checkpoints, reactions, trail
from services.audit.models import AuditChange, AuditEntry, ChainHead, Checkpoint

KEY = Ed25519PrivateKey.generate()
ACTOR = {"id": "alice", "email": "alice@example.com"}
MIGRATION = importlib.import_module("services.audit.migrations.versions.0006_hash_chain")


def renamed(org, old, new):
    return parse_change_event(change_event("organization.renamed", "update", org, ACTOR, "organization", org,
                                           before={"name": old}, after={"name": new}))


def user_event():
    """An event of no organization (e.g. a user's own): the entries of the chain ""."""
    return parse_change_event(change_event("invitation.declined", "update", None, ACTOR, "invitation", "i1",
                                           before={"status": "pending"}, after={"status": "declined"}))


def stored_chain(store, org):
    return sorted(trail.query_entries(store, org, limit=200)["items"], key=lambda e: e["seq"])


def verify(store, org):
    return checkpoints.verify_chain(store, org, KEY.public_key())


def test_entries_are_chained_per_organization_as_they_are_stored(make_store):
    store = make_store("audit")
    batch = [renamed("o1", "a", "b"), renamed("o2", "x", "y"), user_event(), renamed("o1", "b", "c")]
    assert reactions.handle_change_events(store, batch) == 4
    reactions.handle_change_event(store, renamed("o1", "c", "d"))                # one at a time too
    first, second, third = stored_chain(store, "o1")
    assert [e["seq"] for e in (first, second, third)] == [1, 2, 3]
    assert first["prev_hash"] == chain.GENESIS and second["prev_hash"] == first["hash"]
    assert third["prev_hash"] == second["hash"]
    assert all(chain.entry_hash(e) == e["hash"] for e in (first, second, third))
    [other] = stored_chain(store, "o2")
    assert other["seq"] == 1 and other["prev_hash"] == chain.GENESIS
    assert verify(store, "o1")["intact"] and verify(store, "o2")["intact"]
    with store.read() as session:
        heads = {h.chain_id: (h.seq, h.hash) for h in session.query(ChainHead)}
    assert heads == {"o1": (3, third["hash"]), "o2": (1, other["hash"]), "": (1, heads[""][1])}
    reactions.handle_change_events(store, [batch[0]])                            # a redelivery: not chained again
    assert len(stored_chain(store, "o1")) == 3 and verify(store, "o1")["head_seq"] == 3


def test_a_head_is_signed_when_it_moved_and_checked_by_verify(make_store):
    store = make_store("audit")
    reactions.handle_change_events(store, [renamed("o1", "a", "b"), renamed("o2", "x", "y")])
    assert checkpoints.sign_moved_heads(store, KEY) == 2
    assert checkpoints.sign_moved_heads(store, KEY) == 0                         # nothing moved since
    reactions.handle_change_event(store, renamed("o1", "b", "c"))
    assert checkpoints.sign_moved_heads(store, KEY) == 1
    listed = checkpoints.list_checkpoints(store, "o1")["items"]
    assert [c["seq"] for c in listed] == [2, 1] and all(chain.signature_holds(KEY.public_key(), c) for c in listed)
    result = verify(store, "o1")
    assert (result["intact"], result["head_seq"], result["latest_checkpoint_seq"]) == (True, 2, 2)
    other_key = Ed25519PrivateKey.generate()
    assert checkpoints.verify_chain(store, "o1", other_key.public_key())["code"] == "bad_signature"


def test_tampering_in_the_database_is_found(make_store):
    store = make_store("audit")
    reactions.handle_change_events(store, [renamed(org, str(i), str(i + 1)) for org in ("edit", "change", "gone",
                                                                                       "cut", "added")
                                           for i in range(5)])
    checkpoints.sign_moved_heads(store, KEY)
    with store.write() as session:
        session.execute(update(AuditEntry).where(AuditEntry.organization_id == "edit", AuditEntry.chain_seq == 3)
                        .values(actor_id="mallory"))
        seq_4 = session.scalar(text("SELECT seq FROM audit_entries WHERE organization_id = 'change' AND chain_seq = 4"))
        session.execute(update(AuditChange).where(AuditChange.entry_seq == seq_4).values(new_value="forged"))
        gone = session.scalar(text("SELECT seq FROM audit_entries WHERE organization_id = 'gone' AND chain_seq = 2"))
        session.execute(delete(AuditChange).where(AuditChange.entry_seq == gone))
        session.execute(delete(AuditEntry).where(AuditEntry.seq == gone))
        cut = select(AuditEntry.seq).where(AuditEntry.organization_id == "cut", AuditEntry.chain_seq >= 4)
        session.execute(delete(AuditChange).where(AuditChange.entry_seq.in_(cut)))
        session.execute(delete(AuditEntry).where(AuditEntry.seq.in_(cut)))
        session.execute(text("INSERT INTO audit_entries (event_id, type, entity_type, entity_id, action, actor_id, "
                             "organization_id, occurred_at, received_at) VALUES ('forged', 'organization.renamed', "
                             "'organization', 'added', 'update', 'mallory', 'added', '2026-12-02 10:00:00', "
                             "'2026-12-02 10:00:00')"))
    found = {org: verify(store, org) for org in ("edit", "change", "gone", "cut", "added")}
    assert {org: (v["first_bad_seq"], v["code"]) for org, v in found.items()} == {
        "edit": (3, "hash_mismatch"), "change": (4, "hash_mismatch"), "gone": (2, "missing_entry"),
        "cut": (4, "missing_tail"), "added": (None, "unchained_entry")}
    assert not any(v["intact"] for v in found.values())


def test_the_migration_chains_stored_entries_as_the_service_does(make_store):
    store = make_store("audit")
    reactions.handle_change_events(store, [renamed("o1", "a", "b"), user_event(), renamed("o2", "x", "y"),
                                           renamed("o1", "b", "c")])
    before = {org: stored_chain(store, org) for org in ("o1", "o2")}
    with store.write() as session:          # as if stored before the chain existed
        session.execute(update(AuditEntry).values(chain_seq=None, prev_hash=None, hash=None))
        session.execute(delete(ChainHead))
        session.execute(delete(Checkpoint))
    with store.engine.begin() as connection:
        MIGRATION.chain_stored_entries(connection)
    assert {org: stored_chain(store, org) for org in ("o1", "o2")} == before
    assert verify(store, "o1")["intact"]
    reactions.handle_change_event(store, renamed("o1", "c", "d"))                # the service goes on from there
    assert [e["seq"] for e in stored_chain(store, "o1")] == [1, 2, 3] and verify(store, "o1")["intact"]


def test_the_development_key_is_made_once_and_a_configured_one_must_exist(tmp_path):
    made = checkpoints.signing_key(tmp_path / "keys" / "audit.pem", given=False)
    again = checkpoints.signing_key(tmp_path / "keys" / "audit.pem", given=False)
    assert chain.key_id(made.public_key()) == chain.key_id(again.public_key())
    assert oct((tmp_path / "keys" / "audit.pem").stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in (tmp_path / "keys").iterdir()] == ["audit.pem"]          # no draft left behind
    with pytest.raises(ConfigError, match="does not exist"):
        checkpoints.signing_key(tmp_path / "missing.pem", given=True)
    (tmp_path / "rsa.pem").write_text("not a key")
    with pytest.raises(ConfigError, match="AUDIT_SIGNING_KEY_FILE"):
        checkpoints.signing_key(tmp_path / "rsa.pem", given=True)


def test_on_postgresql_a_delivery_is_one_statement_and_stores_the_same_entries(make_store, postgres):
    """A delivery whose chains' heads the process knows and whose events carry no state is stored by one
    statement on PostgreSQL (reactions._store_in_one_statement): the same entries, changes and chain as
    SQLite's path; a redelivery is stored once; a chain another process moved is stored again under its lock."""
    import uuid

    from sqlalchemy import event

    from common.db import Store
    from common.migrate import upgrade
    from common.sql import autocommit_engine
    url = postgres.create_database(f"audit_unit_{uuid.uuid4().hex[:8]}")
    upgrade("audit", url)
    stores = {"sqlite": make_store("audit"), "postgres": Store(url)}
    batches = [[renamed("o1", "a", "b")], [renamed("o1", "b", "c"), renamed("o2", "x", "y"), renamed("o1", "c", "d")],
               [renamed("o2", "y", "z")]]
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement.split()[0])
    for store in stores.values():
        reactions.CHAINS.forget()
        for batch in batches:
            assert reactions.handle_change_events(store, batch) == len(batch)
        assert reactions.handle_change_events(store, batches[1]) == 0          # redelivered: stored once
        reactions.handle_change_event(store, renamed("o1", "d", "e"))          # its head read again
    engines = (stores["postgres"].engine, autocommit_engine(url))
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    try:
        reactions.handle_change_event(stores["postgres"], renamed("o1", "e", "f"))
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)
    assert statements == ["SELECT"]                                            # one round trip
    reactions.handle_change_event(stores["sqlite"], renamed("o1", "e", "f"))
    for org in ("o1", "o2"):
        chains = [[{k: v for k, v in e.items() if k not in ("id", "received_at")} for e in stored_chain(s, org)]
                  for s in stores.values()]
        assert [(e["seq"], e["changes"]) for e in chains[0]] == [(e["seq"], e["changes"]) for e in chains[1]]
        assert verify(stores["postgres"], org)["intact"]
    with stores["postgres"].write() as session:                                 # another process appends to o1
        session.execute(update(ChainHead).where(ChainHead.chain_id == "o1").values(seq=ChainHead.seq))
    reactions.CHAINS.heads["o1"] = (4, "stale")                                 # where this one last saw it
    assert reactions.handle_change_events(stores["postgres"], [renamed("o1", "f", "g")]) == 1
    assert verify(stores["postgres"], "o1")["intact"] and verify(stores["postgres"], "o1")["head_seq"] == 6
    # Deliveries of one chain stored at once by one process (several workers): one after the other, none
    # failing over to the locked way.
    import eventlet
    locked = []
    real_store = reactions._store

    def watched(store, events, locked_=False, **kwargs):
        locked.append(locked_)
        return real_store(store, events, locked_, **kwargs)
    reactions._store = watched
    try:
        threads = [eventlet.spawn(reactions.handle_change_events, stores["postgres"], [renamed("o1", str(i), "x")])
                   for i in range(6)]
        assert [thread.wait() for thread in threads] == [1] * 6
    finally:
        reactions._store = real_store
    assert not any(locked) and verify(stores["postgres"], "o1")["head_seq"] == 12
