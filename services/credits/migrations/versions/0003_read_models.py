"""read models: membership facts, retired organizations, agents' access, which were filled

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 10:00:00.000000

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
    """Upgrade schema."""
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

    op.create_table('agent_access',
    sa.Column('agent_id', sa.String(length=36), nullable=False),
    sa.Column('organization_id', sa.String(length=36), nullable=False),
    sa.Column('contributors', sa.JSON(), nullable=False),
    sa.Column('assignees', sa.JSON(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('agent_id')
    )
    with op.batch_alter_table('agent_access', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_access_organization_id'), ['organization_id'], unique=False)

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
    with op.batch_alter_table('agent_access', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agent_access_organization_id'))

    op.drop_table('agent_access')
    with op.batch_alter_table('membership_facts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_membership_facts_user_id'))
        batch_op.drop_index(batch_op.f('ix_membership_facts_active'))

    op.drop_table('membership_facts')
