"""Audit trails: the organization's (an entry per event, its changes nested) and an agent's (a row per
changed field)."""
from marshmallow import Schema, fields, validate

from common import event_types
from common.contracts.audit import AgentTrailFilters, AuditFilters
from common.events import ACTIONS
from gateway.schemas.common import OPTIONAL, ContractField, ListQuery, date_time, page_of

_ACTIONS = list(ACTIONS)
# Every change event type (common.event_types): what an entry's `type` can be.
EVENT_TYPES = sorted(value for name, value in vars(event_types).items() if name.isupper() and isinstance(value, str))


# ---- requests -------------------------------------------------------------------------------------
def _filters(contract):
    """A trail's filters as query parameters: the audit service's (common.contracts.audit), absent ones
    None. The gateway refuses an unknown action itself, as it always did; the times are the audit
    service's to check, after the caller's permission."""
    return {name: ContractField(field, enforce=name == "action", load_default=None)
            for name, field in contract.instance().fields.items()}


AuditQuery = type("AuditQuery", (ListQuery,), {
    **_filters(AuditFilters), "format": fields.String(load_default=None, validate=validate.OneOf(["json", "csv"]))})
AgentTrailQuery = type("AgentTrailQuery", (ListQuery,), _filters(AgentTrailFilters))


# ---- responses ------------------------------------------------------------------------------------
class Change(Schema):
    field = fields.String()
    old_value = fields.Raw(allow_none=True)
    new_value = fields.Raw(allow_none=True)


class Actor(Schema):
    id = fields.String()
    email = fields.String(metadata={"description": "a person's; absent when the platform or an API key acted",
                                    **OPTIONAL})
    name = fields.String(metadata={"description": "an API key's name (its id is key:<key id>)", **OPTIONAL})


class TrailEvent(Schema):
    """What both trails say of the event behind an entry or a row."""
    event_id = fields.String()
    type = fields.String(metadata={"enum": EVENT_TYPES})
    entity_type = fields.String()
    entity_id = fields.String()
    action = fields.String(metadata={"enum": _ACTIONS})
    actor = fields.Nested(Actor)
    organization_id = fields.String(allow_none=True)
    correlation_id = fields.String(allow_none=True)


class AuditEntry(TrailEvent):
    changes = fields.List(fields.Nested(Change))
    occurred_at = date_time()
    seq = fields.Integer(allow_none=True, metadata={"description": "the entry's position in the organization's "
                                                                   "hash chain: 1, 2, 3... (SPEC §13)"})
    prev_hash = fields.String(allow_none=True, metadata={"description": "the hash of entry seq - 1 (64 zeros for "
                                                                        "seq 1)"})
    hash = fields.String(allow_none=True, metadata={"description": "SHA-256 (hex) of the entry's canonical "
                                                                   "encoding (services/audit/chain.py)"})


AuditPage = page_of(AuditEntry, "AuditPage")


class AgentTrailRow(TrailEvent):
    field = fields.String()
    old_value = fields.Raw(allow_none=True)
    new_value = fields.Raw(allow_none=True)
    occurred_at = date_time()


AgentTrailPage = page_of(AgentTrailRow, "AgentTrailPage")


# ---- the hash chain (SPEC §13) --------------------------------------------------------------------
class Checkpoint(Schema):
    """A signed chain head: Ed25519 `signature` (base64) of the canonical encoding of the other fields."""
    organization_id = fields.String(allow_none=True)
    seq = fields.Integer()
    hash = fields.String()
    signed_at = date_time()
    key_id = fields.String(metadata={"description": "the first 16 hex digits of SHA-256 of the raw public key"})
    signature = fields.String()


CheckpointPage = page_of(Checkpoint, "CheckpointPage")


class ChainVerdict(Schema):
    intact = fields.Boolean()
    entries_checked = fields.Integer()
    head_seq = fields.Integer(allow_none=True)
    head_hash = fields.String(allow_none=True)
    checkpoints_checked = fields.Integer()
    latest_checkpoint_seq = fields.Integer(allow_none=True)
    first_bad_seq = fields.Integer(allow_none=True, metadata={"description": "null when intact"})
    code = fields.String(allow_none=True, metadata={"enum": ["missing_entry", "out_of_order", "broken_link",
                                                             "hash_mismatch", "checkpoint_mismatch",
                                                             "missing_tail", "bad_signature", "unchained_entry"]})
    reason = fields.String(allow_none=True)


class PublicKey(Schema):
    algorithm = fields.String(metadata={"enum": ["Ed25519"]})
    key_id = fields.String()
    public_key = fields.String(metadata={"description": "the raw 32-byte key, base64"})
    pem = fields.String(metadata={"description": "the same key as PEM (SubjectPublicKeyInfo), for the offline "
                                                 "verifier"})


class AuditExport(Schema):
    """The JSON download of a trail: its entries (newest first) and the organization's checkpoints."""
    organization_id = fields.String()
    exported_at = date_time()
    complete = fields.Boolean(metadata={"description": "the whole chain (no filters, under the download limit): "
                                                       "only a complete export can be verified"})
    entries = fields.List(fields.Nested(AuditEntry))
    checkpoints = fields.List(fields.Nested(Checkpoint))
