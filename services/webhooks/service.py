"""Nameko entrypoints of the webhooks service (SPEC §12): thin; endpoints and their secrets in endpoints.py,
deliveries, their retries and the delivery log in deliveries.py, one try's signing and sending in
sender.py (through egress.py, which decides where the service may send), the senders in dispatcher.py.

Who may do what is decided by the pipeline (common.commands) on webhooks' read model of memberships
(Owner and Admin: Action.MANAGE_WEBHOOKS). Every change event arrives on WEBHOOKS_QUEUE in batches and is
acknowledged once its deliveries are stored (reactions.py); the job sends due deliveries outside any
transaction and any acknowledgement, so the spend path never waits for a receiver.
"""
from nameko.timer import timer

from common.auth import Auth
from common.commands import CREDENTIAL, OPTIONAL, Partial, command, query
from common.config import settings
from common.contracts.webhooks import DeliveryFilters, WebhookEndpointInput
from common.db import Database
from common.event_types import ALL_TYPES
from common.events import WEBHOOKS_QUEUE, change_event_or_none
from common.framework.batch_consume import consume_batch
from common.heap import FrozenStartupHeap
from common.membership_facts import MembershipFacts
from common.outbox import OutboxRelay
from common.permissions import Action
from common.readmodels import ReadModelFill
from common.rpc import service_proxy
from services.webhooks import deliveries, endpoints, reactions
from services.webhooks.dispatcher import DispatcherProvider
from services.webhooks.models import READ_MODELS, HandledRequest, IdempotentRequest, OutboxEvent

WEBHOOKS = settings().webhooks


class WebhooksService:
    name = "webhooks"

    auth = Auth()
    heap = FrozenStartupHeap()      # common.heap: fewer long garbage-collector pauses under load
    db = Database(handled_requests=HandledRequest, idempotent_requests=IdempotentRequest)
    outbox = OutboxRelay(OutboxEvent)
    members = service_proxy("members")      # only to confirm refusals (common.membership_facts)
    memberships = MembershipFacts(READ_MODELS, owner="members")
    fill = ReadModelFill(READ_MODELS)
    dispatcher = DispatcherProvider()

    @query(CREDENTIAL)
    def ping(self, caller):
        self.fill.check()       # degraded until the read model was first filled from members
        return "pong"

    @query(CREDENTIAL)
    def event_types(self, caller):
        """What an endpoint may subscribe to."""
        return list(ALL_TYPES)

    # ---- endpoints ---------------------------------------------------------------------------------
    @command(Action.MANAGE_WEBHOOKS, idempotency=OPTIONAL, input=WebhookEndpointInput)
    def create_endpoint(self, caller, session, organization_id, url, event_types, description="", enabled=True,
                        idempotency_key=None):
        """A new endpoint; its secret is in this answer only (a replay with the key answers it again)."""
        return endpoints.create(session, caller.identity, organization_id, url, event_types, description, enabled,
                                WEBHOOKS.allow_private_networks)

    @query(Action.MANAGE_WEBHOOKS)
    def list_endpoints(self, caller, organization_id, cursor=None, limit=None):
        return endpoints.page(self.db, organization_id, cursor, limit)

    @query(Action.MANAGE_WEBHOOKS)
    def get_endpoint(self, caller, organization_id, endpoint_id):
        return endpoints.get(self.db, organization_id, endpoint_id)

    @command(Action.MANAGE_WEBHOOKS, input={"fields": Partial(WebhookEndpointInput)})
    def update_endpoint(self, caller, session, organization_id, endpoint_id, fields):
        return endpoints.update_endpoint(session, caller.identity, organization_id, endpoint_id, fields,
                                         WEBHOOKS.allow_private_networks)

    @command(Action.MANAGE_WEBHOOKS)
    def delete_endpoint(self, caller, session, organization_id, endpoint_id):
        return endpoints.delete(session, caller.identity, organization_id, endpoint_id)

    @command(Action.MANAGE_WEBHOOKS)
    def rotate_secret(self, caller, session, organization_id, endpoint_id):
        return endpoints.rotate_secret(session, caller.identity, organization_id, endpoint_id)

    # ---- deliveries --------------------------------------------------------------------------------
    @query(Action.MANAGE_WEBHOOKS, input={"filters": DeliveryFilters})
    def list_deliveries(self, caller, organization_id, endpoint_id, filters=None, cursor=None, limit=None):
        status = (filters or {}).get("status")
        return deliveries.log_page(self.db, organization_id, endpoint_id, status, cursor, limit)

    @command(Action.MANAGE_WEBHOOKS)
    def retry_delivery(self, caller, session, organization_id, endpoint_id, delivery_id):
        return deliveries.retry(session, organization_id, endpoint_id, delivery_id)

    @command(Action.MANAGE_WEBHOOKS)
    def send_test(self, caller, session, organization_id, endpoint_id):
        return deliveries.send_test(session, organization_id, endpoint_id)

    @timer(interval=WEBHOOKS.poll_seconds)
    def deliver_due(self):
        """Start sending what is due (the sends go on after this returns: dispatcher.py)."""
        self.dispatcher.run_due(self.db)

    @timer(interval=3600)
    def prune_delivery_log(self):
        while deliveries.prune_ended(self.db):
            pass

    # ---- events ------------------------------------------------------------------------------------
    # Batches (common.framework.batch_consume), acknowledged once their deliveries are stored; on an error
    # (database down) the batch goes back to the queue. A message that is not a change event is dropped.
    @consume_batch(WEBHOOKS_QUEUE, requeue_on_error=True)
    def on_change_events(self, messages):
        events = [event for event in map(change_event_or_none, messages) if event is not None]
        if events:
            reactions.handle_change_events(self.db, events)
