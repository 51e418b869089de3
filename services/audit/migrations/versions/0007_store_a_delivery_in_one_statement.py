"""a delivery of change events stored in one statement on PostgreSQL (issue 27)

audit_store_delivery does what reactions._store does for a delivery whose chains' heads the process knows
and whose events carry no state (nearly all of them: a spend's, a rename's): the heads moved from where they
were seen, the entries inserted (each once: the inbox), their changed fields inserted; all or nothing, one
round trip instead of six. A head another process moved raises AU001 (ChainMoved), an event stored before
AU002 (a redelivery); the caller then stores the delivery the way it does on SQLite. No rule lives here:
the entries, their places and hashes, and the changes' rows are computed in Python (trail.py).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:30:00

"""
from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: str | Sequence[str] | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STORE = """
CREATE OR REPLACE FUNCTION audit_store_delivery(p json) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  v_count integer;
BEGIN
  UPDATE audit_chain_heads h SET seq = m.seq, hash = m.hash
    FROM json_to_recordset(p->'heads') AS m(chain_id text, seen integer, seq integer, hash text)
   WHERE h.chain_id = m.chain_id AND h.seq = m.seen;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  IF v_count <> json_array_length(p->'heads') THEN
    RAISE EXCEPTION 'audit: a chain moved' USING ERRCODE = 'AU001';
  END IF;
  INSERT INTO audit_entries (event_id, type, entity_type, entity_id, action, actor_id, actor_email, actor_name,
                             organization_id, correlation_id, occurred_at, received_at, chain_seq, prev_hash, hash)
    SELECT r.event_id, r.type, r.entity_type, r.entity_id, r.action, r.actor_id, r.actor_email, r.actor_name,
           r.organization_id, r.correlation_id, r.occurred_at, r.received_at, r.chain_seq, r.prev_hash, r.hash
      FROM json_array_elements(p->'entries') WITH ORDINALITY AS e(value, n),
           json_populate_record(NULL::audit_entries, e.value) AS r
     ORDER BY e.n
  ON CONFLICT (event_id) DO NOTHING;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  IF v_count <> json_array_length(p->'entries') THEN
    RAISE EXCEPTION 'audit: an event of the delivery was stored before' USING ERRCODE = 'AU002';
  END IF;
  INSERT INTO audit_changes (entry_seq, field, old_value, new_value, old_text, new_text)
    SELECT a.seq, c.field, c.old_value, c.new_value, c.old_text, c.new_text
      FROM json_array_elements(p->'changes') WITH ORDINALITY AS x(value, n)
      CROSS JOIN LATERAL json_to_record(x.value)
                 AS c(entry_event_id text, field text, old_value json, new_value json, old_text text, new_text text)
      JOIN audit_entries a ON a.event_id = c.entry_event_id
     ORDER BY x.n;
  RETURN v_count;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(STORE)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP FUNCTION IF EXISTS audit_store_delivery(json)")
