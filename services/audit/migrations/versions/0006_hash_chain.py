"""the hash chain of each organization's entries, its heads and signed checkpoints (SPEC §13); the entries
stored before it are chained here, in the order they were stored

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 23:00:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from common.timeutil import iso
from services.audit import chain

# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 2000
ENTRIES = sa.table('audit_entries', sa.column('seq', sa.Integer), sa.column('event_id', sa.String),
                   sa.column('type', sa.String), sa.column('entity_type', sa.String),
                   sa.column('entity_id', sa.String), sa.column('action', sa.String),
                   sa.column('actor_id', sa.String), sa.column('actor_email', sa.String),
                   sa.column('actor_name', sa.String), sa.column('organization_id', sa.String),
                   sa.column('correlation_id', sa.String), sa.column('occurred_at', sa.DateTime(timezone=True)),
                   sa.column('chain_seq', sa.Integer), sa.column('prev_hash', sa.String),
                   sa.column('hash', sa.String))
CHANGES = sa.table('audit_changes', sa.column('id', sa.Integer), sa.column('entry_seq', sa.Integer),
                   sa.column('field', sa.String), sa.column('old_value', sa.JSON), sa.column('new_value', sa.JSON))
HEADS = sa.table('audit_chain_heads', sa.column('chain_id', sa.String), sa.column('seq', sa.Integer),
                 sa.column('hash', sa.String), sa.column('checkpointed_seq', sa.Integer))


def upgrade() -> None:
    with op.batch_alter_table('audit_entries') as batch:
        batch.add_column(sa.Column('chain_seq', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('hash', sa.String(length=64), nullable=True))
        batch.create_index('ux_audit_chain_position', ['organization_id', 'chain_seq'], unique=True)
    op.create_table('audit_chain_heads',
                    sa.Column('chain_id', sa.String(length=36), primary_key=True),
                    sa.Column('seq', sa.Integer(), nullable=False),
                    sa.Column('hash', sa.String(length=64), nullable=False),
                    sa.Column('checkpointed_seq', sa.Integer(), nullable=False))
    op.create_table('audit_checkpoints',
                    sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
                    sa.Column('chain_id', sa.String(length=36), nullable=False),
                    sa.Column('seq', sa.Integer(), nullable=False),
                    sa.Column('hash', sa.String(length=64), nullable=False),
                    sa.Column('signed_at', sa.String(length=32), nullable=False),
                    sa.Column('key_id', sa.String(length=16), nullable=False),
                    sa.Column('signature', sa.String(length=128), nullable=False))
    op.create_index('ux_audit_checkpoint', 'audit_checkpoints', ['chain_id', 'seq'], unique=True)
    chain_stored_entries(op.get_bind())


def chain_stored_entries(connection):
    """Every entry stored so far, chained in storage order (its seq) per organization, as the audit service
    chains new ones (trail.Chains): the entry as the API shows it is what is hashed."""
    heads, after = {}, 0
    while True:
        rows = connection.execute(sa.select(ENTRIES).where(ENTRIES.c.seq > after).order_by(ENTRIES.c.seq)
                                  .limit(BATCH)).all()
        if not rows:
            break
        changes = {}
        for change in connection.execute(sa.select(CHANGES).where(CHANGES.c.entry_seq > after,
                                                                  CHANGES.c.entry_seq <= rows[-1].seq)
                                         .order_by(CHANGES.c.id)):
            changes.setdefault(change.entry_seq, []).append(
                {"field": change.field, "old_value": change.old_value, "new_value": change.new_value})
        links = []
        for row in rows:
            chain_id = row.organization_id or ""
            seq, previous = heads.get(chain_id, (0, chain.GENESIS))
            document = {"seq": seq + 1, "prev_hash": previous, "event_id": row.event_id, "type": row.type,
                        "entity_type": row.entity_type, "entity_id": row.entity_id, "action": row.action,
                        "actor": {"id": row.actor_id, **({"email": row.actor_email} if row.actor_email else {}),
                                  **({"name": row.actor_name} if row.actor_name else {})},
                        "organization_id": row.organization_id, "correlation_id": row.correlation_id,
                        "occurred_at": iso(row.occurred_at), "changes": changes.get(row.seq, [])}
            entry_hash = chain.entry_hash(document)
            heads[chain_id] = (seq + 1, entry_hash)
            links.append({"row_seq": row.seq, "new_chain_seq": seq + 1, "new_prev_hash": previous,
                          "new_hash": entry_hash})
        connection.execute(ENTRIES.update().where(ENTRIES.c.seq == sa.bindparam("row_seq")).values(
            chain_seq=sa.bindparam("new_chain_seq"), prev_hash=sa.bindparam("new_prev_hash"),
            hash=sa.bindparam("new_hash")), links)
        after = rows[-1].seq
    if heads:
        connection.execute(HEADS.insert(), [{"chain_id": chain_id, "seq": seq, "hash": head_hash, "checkpointed_seq": 0}
                                            for chain_id, (seq, head_hash) in heads.items()])


def downgrade() -> None:
    op.drop_index('ux_audit_checkpoint', table_name='audit_checkpoints')
    op.drop_table('audit_checkpoints')
    op.drop_table('audit_chain_heads')
    with op.batch_alter_table('audit_entries') as batch:
        batch.drop_index('ux_audit_chain_position')
        batch.drop_column('hash')
        batch.drop_column('prev_hash')
        batch.drop_column('chain_seq')
