"""The orders of the member list (memberships.list_members), each a keyset (common.paging) sorted in SQL:
by name, joined date or highest role (Owner first), ties by name, then email, then user id; `-` in front
reverses all of it. Names are compared case-folded (users.name_key, Python's casefold(), which neither
database's lower() matches beyond ASCII) and text by code point, as Python compares strings."""
from datetime import datetime

from sqlalchemy import case, func, select

from common.paging import Keyset, asc, desc
from common.permissions import ROLE_ORDER
from common.sql import code_point_order
from services.members.models import MemberRole, Membership, User

# The member's highest role as its rank in ROLE_ORDER (0: Owner).
TOP_ROLE = (select(func.min(case(ROLE_ORDER, value=MemberRole.role))).correlate(Membership)
            .where(MemberRole.organization_id == Membership.organization_id, MemberRole.user_id == Membership.user_id)
            .scalar_subquery())


def members_in_order(sort):
    """The keyset of the member list sorted by `sort`, one of MEMBER_SORTS with an optional `-`."""
    key = desc if sort.startswith("-") else asc
    first = {"name": [], "joined_at": [key("joined_at", Membership.joined_at, datetime)],
             "role": [key("role", TOP_ROLE, int)]}[sort.lstrip("-")]
    return Keyset(f"members:{sort}", *first, key("name", code_point_order(User.name_key)),
                  key("email", code_point_order(User.email)), key("user_id", code_point_order(Membership.user_id)))
