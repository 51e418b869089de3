"""the auto top-up threshold beside the alert settings

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 18:10:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0011'
down_revision: str | Sequence[str] | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('alert_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('topup_threshold', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('topup_as_of', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('alert_settings', schema=None) as batch_op:
        batch_op.drop_column('topup_as_of')
        batch_op.drop_column('topup_threshold')
