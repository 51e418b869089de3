""""My usage" (GET /v1/me/usage): a page of the caller's organizations, in the organization list's order
(Individual first, then oldest first, then by id: the same keyset, and so the same cursors, as orgs'
organization cards), each with its name and the caller's usage this period. Decided here alone: the
memberships and the organizations' names come from the read models (common.readmodels)."""
from datetime import datetime

from sqlalchemy import and_, case, select

from common.paging import Keyset, asc, keyset_page
from services.credits import ledger
from services.credits.models import READ_MODELS, MembershipFact, OrganizationFact

INDIVIDUAL = "individual"
ORGANIZATIONS = Keyset("organizations",
                       asc("collective", case((OrganizationFact.type == INDIVIDUAL, 0), else_=1), int),
                       asc("created_at", OrganizationFact.created_at, datetime),
                       asc("id", OrganizationFact.organization_id))


def my_usage_page(store, user_id, cursor=None, limit=None, now=None):
    """{"items": [usage + organization_name], "next_cursor"} of the live organizations `user_id` is a
    member of."""
    query = (select(OrganizationFact.organization_id, OrganizationFact.name)
             .join(MembershipFact, and_(MembershipFact.organization_id == OrganizationFact.organization_id,
                                        MembershipFact.user_id == user_id, MembershipFact.active.is_(True)))
             .where(OrganizationFact.active.is_(True),
                    OrganizationFact.organization_id.not_in(READ_MODELS.retired_organizations())))
    with store.read() as session:
        page = keyset_page(session, query, ORGANIZATIONS, cursor, limit, dump=tuple)
    names = dict(page["items"])
    usage = ledger.usage_by_organization(store, user_id, list(names), now=now) if names else []
    return {"items": [dict(item, organization_name=names[item["organization_id"]]) for item in usage],
            "next_cursor": page["next_cursor"]}
