"""handled requests: RPC requests whose command committed (common.handled_requests)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 13:40:00.000000

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
    """Upgrade schema."""
    op.create_table('handled_requests',
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('handled_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('request_id')
    )
    with op.batch_alter_table('handled_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_handled_requests_handled_at'), ['handled_at'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('handled_requests')
