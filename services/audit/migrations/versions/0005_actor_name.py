"""the name of an entry's actor when it is an API key (SPEC §9: actor {"id": "key:<id>", "name"})

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 16:40:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: str | Sequence[str] | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('audit_entries') as batch:
        batch.add_column(sa.Column('actor_name', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('audit_entries') as batch:
        batch.drop_column('actor_name')
