"""read models of organizations (name, type, creation time, liveness) and agents' access (organization,
liveness), owned by orgs and fed by its events (common.readmodels): inviting and leaving are decided
from them; filled from orgs' snapshots at start

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 14:45:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0009'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('organization_facts',
    sa.Column('organization_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('organization_id')
    )
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


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('agent_access', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agent_access_organization_id'))
    op.drop_table('agent_access')
    op.drop_table('organization_facts')
