"""read model of memberships (common.readmodels): the facts the trail's permission checks are decided on

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:12:41.318204

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema. The tables start empty: the service fills them from members' snapshot when it
    starts (common.readmodels.ReadModelFill)."""
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

    op.create_table('retired_organizations',
    sa.Column('organization_id', sa.String(length=36), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('organization_id')
    )
    op.create_table('read_models_filled',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('filled_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('read_models_filled')
    op.drop_table('retired_organizations')
    with op.batch_alter_table('membership_facts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_membership_facts_user_id'))
        batch_op.drop_index(batch_op.f('ix_membership_facts_active'))

    op.drop_table('membership_facts')
