"""grants bought with a payment: the billing service's transaction id, unique

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 17:16:19.769465

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
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('transaction_id', sa.String(length=36), nullable=True))
        batch_op.create_index('uq_grants_transaction_id', ['transaction_id'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.drop_index('uq_grants_transaction_id')
        batch_op.drop_column('transaction_id')
