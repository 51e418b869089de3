"""budget group member versions: each member's placement (which group they are in) is versioned, for
the members service's read model of it (common.readmodels, kind budget_group_members)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 14:15:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: str | Sequence[str] | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('budget_group_member_versions',
    sa.Column('organization_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('organization_id', 'user_id')
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('budget_group_member_versions')
