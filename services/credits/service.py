"""Nameko entrypoints of the credits service. Today it answers health checks and relays its outbox;
the ledger and budget groups arrive with the credits issue."""
from common.db import Database
from common.outbox import OutboxRelay
from common.rpc import rpc
from services.credits.models import OutboxEvent


class CreditsService:
    name = "credits"

    db = Database()
    outbox = OutboxRelay(OutboxEvent)

    @rpc
    def ping(self):
        return "pong"
