"""Idempotency-Key support for creates: the first answer is stored with the change and replayed to
retries, so a client that lost a response can safely send the request again.

Each service that accepts keys declares `class IdempotentRequest(IdempotencyMixin, Base)` and names it to its
Database provider; the command pipeline's unit of work (common.unit_of_work) replays and stores answers.
"""
import hashlib
import json
from functools import cache

from sqlalchemy import JSON, DateTime, String, bindparam, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from common.errors import BadRequest, Conflict

KEY_MAX_LENGTH = 200
# Marks an answer that find_replay took from storage, for the gateway's Idempotent-Replayed header.
REPLAYED = "idempotent_replayed"


class IdempotencyMixin:
    """The first answer to a request that carried an Idempotency-Key (per user and key)."""
    __tablename__ = "idempotent_requests"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_MAX_LENGTH), primary_key=True)
    operation: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict] = mapped_column(JSON)
    created_at = mapped_column(DateTime(timezone=True), nullable=False)


def operation(kind, *request):
    """What a key is stored under: the kind of request and a fingerprint of its values, so that the same
    key sent with other values is a 409 (find_replay), never a replay of an unrelated answer."""
    fingerprint = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()[:32]
    return f"{kind}:{fingerprint}"


def check_key(key):
    """The key as given, None when absent; 400 when it is not a short printable string."""
    if key in (None, ""):
        return None
    if not isinstance(key, str) or len(key) > KEY_MAX_LENGTH or not key.isprintable():
        raise BadRequest(f"Idempotency-Key must be at most {KEY_MAX_LENGTH} printable characters.",
                         code="invalid_idempotency_key", field="Idempotency-Key")
    return key


def find_replay(session, model, user_id, key, operation):
    """The stored answer of an earlier request with this key, or None. A key reused for another kind
    of request is a 409: replaying an unrelated answer would mislead the client."""
    if not key:
        return None
    record = session.execute(_stored_answer(model), {"user": user_id, "key": key}).first()
    if record is None:
        return None
    return replay_of(record.operation, record.response, operation)


def replay_of(stored_operation, response, operation):
    """The answer stored under a key (read as `stored_operation` and `response`) replayed to a request made as
    `operation`: marked replayed, or the 409 when the key was used for another request."""
    if stored_operation != operation:
        raise Conflict("This Idempotency-Key was already used for another request.",
                       code="idempotency_key_reused", field="Idempotency-Key")
    return {**response, REPLAYED: True} if isinstance(response, dict) else response


def replay_headers(answer):
    """The HTTP headers of an answer: `Idempotent-Replayed: true` when it is a stored one (its marker
    taken out of the answer), else None. The one contract of every route that takes a key."""
    return {"Idempotent-Replayed": "true"} if answer.pop(REPLAYED, False) else None


def remember(session, model, user_id, key, operation, response, now):
    """Store the answer in the same transaction as the change it describes (no-op without a key)."""
    if key:     # a plain INSERT (no ORM object): a second request with the key fails here, on the primary key
        session.execute(_store_answer(model), {"user_id": user_id, "key": key, "operation": operation,
                                               "response": response, "created_at": now})


# Built once per table: they run in every spend, where building them cost more than running them.
@cache
def _stored_answer(model):
    return select(model.operation, model.response).where(model.user_id == bindparam("user"),
                                                         model.key == bindparam("key"))


@cache
def _store_answer(model):
    return insert(model.__table__)
