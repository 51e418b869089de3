"""organization versions: each organization counts its changes (created, renamed, deleted), the version
its events' state carries for other services' read models of organizations (common.readmodels)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 14:30:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema. Existing organizations start at version 0 (what snapshot_organizations serves
    them at; their next change is 1)."""
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.drop_column('version')
