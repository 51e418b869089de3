"""The organization's transactions (SPEC §11), newest first, filtered by status and type, keyset-paged."""
from datetime import datetime

from sqlalchemy import select

from common.paging import Keyset, desc, keyset_page
from services.billing.models import Transaction
from services.billing.schemas import transaction_dict

NEWEST_FIRST = Keyset("transactions", desc("created_at", Transaction.created_at, datetime),
                      desc("id", Transaction.id))


def page(store, organization_id, filters, cursor=None, limit=None):
    """`filters`: {"status", "type"} as the declared contract loaded them (absent or None: any)."""
    query = select(Transaction).where(Transaction.organization_id == organization_id)
    for name in ("status", "type"):
        if (filters or {}).get(name):
            query = query.where(getattr(Transaction, name) == filters[name])
    with store.read() as session:
        return keyset_page(session, query, NEWEST_FIRST, cursor, limit, dump=transaction_dict)
