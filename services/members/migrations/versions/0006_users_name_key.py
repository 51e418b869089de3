"""users.name_key: the name case-folded, by which the member list sorts in SQL

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:00:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

USERS = sa.table('users', sa.column('id', sa.String), sa.column('name', sa.String), sa.column('name_key', sa.String))


def upgrade() -> None:
    """Upgrade schema. Existing names are folded here, by Python's casefold() as the model does (neither
    database's lower() is the same beyond ASCII)."""
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('name_key', sa.String(length=600), nullable=True))
    connection = op.get_bind()
    folded = [{'user_id': user_id, 'key': name.casefold()}
              for user_id, name in connection.execute(sa.select(USERS.c.id, USERS.c.name))]
    if folded:
        connection.execute(USERS.update().where(USERS.c.id == sa.bindparam('user_id'))
                           .values(name_key=sa.bindparam('key')), folded)
    with op.batch_alter_table('users') as batch:
        batch.alter_column('name_key', existing_type=sa.String(length=600), nullable=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('users') as batch:
        batch.drop_column('name_key')
