"""Users as the gateway saw them in a token: created on first sight, refreshed when the token's email
or name changes."""

from common.auth import canonical_email
from common.errors import Unauthenticated
from common.events import changed_fields
from common.timeutil import utcnow
from services.members.events import USER_REGISTERED, USER_UPDATED, emit
from services.members.models import User
from services.members.schemas import user_schema


def caller_email(identity):
    """The caller's email in its canonical form (common.auth.canonical_email), by which users and
    invitations are stored and matched. The gateway refuses tokens whose email has none; this refuses an
    identity that reached the service some other way with such an email, rather than matching it."""
    email = canonical_email(identity.email)
    if email is None:
        raise Unauthenticated("The signed-in user's email is not a valid address.", code="invalid_token",
                              field="email")
    return email


def register_user(session, identity):
    """Create or refresh the user the gateway saw in a token. Returns (user dict, created?). Two first
    requests of a new user may race: the command pipeline runs the loser again, which finds the row."""
    email = caller_email(identity)
    user = session.get(User, identity.id)
    now = utcnow()
    if user is None:
        user = User(id=identity.id, email=email, name=identity.name, created_at=now, updated_at=now)
        session.add(user)
        emit(session, USER_REGISTERED, "create", None, identity, "user", identity.id,
             after={"email": email, "name": identity.name})
        return user_dict(user), True
    before, after = changed_fields({"email": user.email, "name": user.name}, {"email": email, "name": identity.name})
    if after:
        user.email, user.name, user.updated_at = email, identity.name, now
        emit(session, USER_UPDATED, "update", None, identity, "user", identity.id, before=before, after=after)
    return user_dict(user), False


def user_dict(user):
    return user_schema.dump(user)
