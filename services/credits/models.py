"""Tables of the credits service. Accounts, ledger and budget groups arrive with the credits issue;
today it has the outbox every service has."""
from sqlalchemy.orm import DeclarativeBase

from common.outbox import OutboxMixin


class Base(DeclarativeBase):
    pass


class OutboxEvent(OutboxMixin, Base):
    pass
