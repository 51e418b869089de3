"""Signed checkpoints of the organizations' hash chains, and verifying a chain (SPEC §13; chain.py says
what is hashed and signed).

The signing key is an Ed25519 private key in a PEM file: AUDIT_SIGNING_KEY_FILE, or in development a key
generated at the first start into DATA_DIR/audit-signing-key.pem (readable by its owner only). Whoever
holds it can sign checkpoints: in production it is given, and kept apart from the audit database, whose
writers it guards against.

Every AUDIT_CHECKPOINT_SECONDS (a minute by default) the audit service signs the head of each chain that
moved since its last checkpoint. Replicas may both do it: a checkpoint is unique per chain and seq.
"""
import base64
import logging
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from nameko.extensions import DependencyProvider
from sqlalchemy import select, update

from common.config import ConfigError, settings
from common.paging import Keyset, desc, keyset_page
from common.sql import conflict_insert
from common.timeutil import iso, utcnow
from services.audit import chain
from services.audit.models import AuditEntry, ChainHead, Checkpoint
from services.audit.schemas import audit_entry_schema

log = logging.getLogger(__name__)
NEWEST_FIRST = Keyset("checkpoints", desc("seq", Checkpoint.seq, int))
VERIFY_BATCH = 500          # entries read at a time while verifying: a long chain is never all in memory


# ---- the key --------------------------------------------------------------------------------------------
def signing_key(path, given):
    """The private key in `path`; when not `given` (development) and absent, one is generated there first
    (two processes starting together end with the same key)."""
    if not path.exists():
        if given:
            raise ConfigError(f"AUDIT_SIGNING_KEY_FILE names {path}, which does not exist")
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under a name of its own, then linked into place (linking never replaces a file):
        # another process starting at the same moment reads either no key or a complete one.
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as key_file:
            key_file.write(chain.new_private_key_pem())
        try:
            os.link(draft, path)
            log.info("generated the development audit signing key in %s", path)
        except FileExistsError:
            pass                                    # another process made it a moment ago: theirs is the key
        finally:
            draft.unlink()
    try:
        return chain.load_private_key(path.read_bytes())
    except ValueError as error:
        raise ConfigError(f"AUDIT_SIGNING_KEY_FILE ({path}): {error}") from None


class SigningKey(DependencyProvider):
    """The service's signing key, read (or made, in development) when the service starts: a key that is
    configured but missing or not Ed25519 stops the start with the reason."""

    def setup(self):
        config = settings()
        self.key = signing_key(config.audit_signing_key_file, config.audit_signing_key_given)

    def get_dependency(self, worker_ctx):
        return self.key


def public_key_dict(private_key):
    public = private_key.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"algorithm": "Ed25519", "key_id": chain.key_id(public), "public_key": base64.b64encode(raw).decode(),
            "pem": chain.public_pem(public)}


# ---- checkpoints ------------------------------------------------------------------------------------------
def checkpoint_dict(row):
    return {"organization_id": row.chain_id or None, "seq": row.seq, "hash": row.hash, "signed_at": row.signed_at,
            "key_id": row.key_id, "signature": row.signature}


def sign_moved_heads(store, private_key, now=None):
    """A checkpoint of every chain head that moved since its last one; returns how many were signed."""
    signed_at = iso(now or utcnow())
    with store.write() as session:
        heads = session.execute(select(ChainHead.chain_id, ChainHead.seq, ChainHead.hash)
                                .where(ChainHead.seq > ChainHead.checkpointed_seq)).all()
        for chain_id, seq, head_hash in heads:
            signed = chain.sign_checkpoint(private_key, chain_id or None, seq, head_hash, signed_at)
            session.execute(conflict_insert(session)(Checkpoint).values(
                chain_id=chain_id, seq=seq, hash=head_hash, signed_at=signed_at, key_id=signed["key_id"],
                signature=signed["signature"]).on_conflict_do_nothing())
            session.execute(update(ChainHead).where(ChainHead.chain_id == chain_id, ChainHead.checkpointed_seq < seq)
                            .values(checkpointed_seq=seq))
    return len(heads)


def all_checkpoints(store, organization_id):
    """Every checkpoint of the organization, newest first (what an export carries)."""
    with store.read() as session:
        return [checkpoint_dict(row) for row in session.scalars(
            select(Checkpoint).where(Checkpoint.chain_id == organization_id).order_by(Checkpoint.seq.desc()))]


def list_checkpoints(store, organization_id, cursor=None, limit=None):
    with store.read() as session:
        return keyset_page(session, select(Checkpoint).where(Checkpoint.chain_id == organization_id), NEWEST_FIRST,
                           cursor, limit, dump=checkpoint_dict)


# ---- verification -----------------------------------------------------------------------------------------
def _entries_in_order(store, organization_id):
    """The organization's entries as the API shows them, in chain order, VERIFY_BATCH at a time."""
    after = 0
    while True:
        with store.read() as session:
            rows = session.scalars(select(AuditEntry).where(AuditEntry.organization_id == organization_id,
                                                            AuditEntry.chain_seq > after)
                                   .order_by(AuditEntry.chain_seq).limit(VERIFY_BATCH)).all()
            batch = [audit_entry_schema.dump(row) for row in rows]
        yield from batch
        if len(batch) < VERIFY_BATCH:
            return
        after = batch[-1]["seq"]


def verify_chain(store, organization_id, public_key):
    """The organization's chain checked from seq 1 to its end, against its latest checkpoint (and that
    checkpoint's signature): chain.Verdict as a dict. An entry of the organization outside the chain (no
    seq: stored by hand) is a break too."""
    with store.read() as session:
        latest = session.scalars(select(Checkpoint).where(Checkpoint.chain_id == organization_id)
                                 .order_by(Checkpoint.seq.desc()).limit(1)).all()
        unchained = session.scalar(select(AuditEntry.seq).where(AuditEntry.organization_id == organization_id,
                                                                AuditEntry.chain_seq.is_(None)).limit(1))
    verdict = chain.verify(_entries_in_order(store, organization_id), [checkpoint_dict(c) for c in latest],
                           public_key)
    if verdict.intact and unchained is not None:
        verdict.intact, verdict.code = False, "unchained_entry"
        verdict.reason = ("an entry of the organization has no place in the chain: it was added outside the "
                          "audit service")
    return verdict.as_dict()


if __name__ == "__main__":
    # `python -m services.audit.checkpoints PATH`: make a signing key at PATH unless one is there (docker
    # compose does it into a volume its audit containers share; in production mount your own there).
    signing_key(Path(sys.argv[1]), given=False)
    print(f"audit signing key: {sys.argv[1]}")
