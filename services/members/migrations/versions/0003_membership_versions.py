"""membership versions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 10:00:00.000000

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
    # Memberships that exist already get no row: their version is 0 until their first change.
    op.create_table('membership_versions',
    sa.Column('organization_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('organization_id', 'user_id')
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('membership_versions')
