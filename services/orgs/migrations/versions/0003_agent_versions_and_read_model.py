"""agents' access versions; read model of memberships (common.readmodels)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 11:02:17.514733

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema. Existing agents start at version 0 (what snapshot_agents serves them at; their
    next change is 1). The membership facts start empty: the service fills them from members' snapshot
    when it starts (common.readmodels.ReadModelFill)."""
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version', sa.Integer(), server_default='0', nullable=False))

    op.create_table('membership_facts',
    sa.Column('organization_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('roles', sa.JSON(), nullable=False),
    sa.Column('joined_at', sa.String(length=40), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('organization_id', 'user_id')
    )
    with op.batch_alter_table('membership_facts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_membership_facts_active'), ['active'], unique=False)
        batch_op.create_index(batch_op.f('ix_membership_facts_user_id'), ['user_id'], unique=False)

    op.create_table('read_models_filled',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('filled_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('read_models_filled')
    with op.batch_alter_table('membership_facts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_membership_facts_user_id'))
        batch_op.drop_index(batch_op.f('ix_membership_facts_active'))

    op.drop_table('membership_facts')
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_column('version')
