"""the spend's server-side functions on PostgreSQL (issue 27)

A spend on PostgreSQL is two round trips (services/credits/spend_batches.py): one call of
credits_spend_facts reads everything it decides on, one call of credits_apply_spends writes what Python
decided for a batch of spends of one organization. The functions hold no rule of the product: Python
decides (spends.py, the same code as on SQLite); the apply only checks, under the account's row lock, that
what the decision was made on has not changed (the account row's version, PostgreSQL's xmin, which every
change of an organization's money renews, and each member's usage), then writes it. SQLite has no functions:
its spends run the statements of spend_statements.py.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 09:10:00

"""
from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0012'
down_revision: str | Sequence[str] | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = """
CREATE OR REPLACE FUNCTION credits_money(v_org text, v_users json, v_period text, v_now timestamptz)
RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'version', (SELECT xmin::text::bigint FROM accounts WHERE organization_id = v_org),
    'balance', coalesce((SELECT balance FROM accounts WHERE organization_id = v_org), 0),
    'grants', (SELECT coalesce(json_agg(json_build_array(id, type, remaining, expires_at, created_at)), '[]')
               FROM grants WHERE organization_id = v_org AND remaining > 0
                             AND (expires_at IS NULL OR expires_at > v_now)),
    'used', (SELECT coalesce(json_object_agg(user_id, used), '{}') FROM member_usage
             WHERE organization_id = v_org AND period = v_period
               AND user_id IN (SELECT json_array_elements_text(v_users))))
$$
"""

FACTS = """
CREATE OR REPLACE FUNCTION credits_spend_facts(p json) RETURNS json LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_org text := p->>'org';
  v_user text := p->>'user';
  v_now timestamptz := (p->>'now')::timestamptz;
BEGIN
  RETURN json_build_object(
    'retired', EXISTS (SELECT 1 FROM retired_organizations WHERE organization_id = v_org),
    'member', (SELECT json_build_object('roles', roles, 'active', active) FROM membership_facts
               WHERE organization_id = v_org AND user_id = v_user),
    'agent', (SELECT json_build_object('organization_id', organization_id, 'active', active,
                                       'contributors', contributors, 'assignees', assignees)
              FROM agent_access WHERE agent_id = p->>'agent'),
    'replay', (SELECT json_build_object('operation', operation, 'response', response) FROM idempotent_requests
               WHERE user_id = p->>'key_user' AND key = p->>'key'),
    'group', (SELECT json_build_object('id', g.id, 'name', g.name, 'monthly_limit', g.monthly_limit)
              FROM budget_groups g JOIN budget_group_members m ON m.group_id = g.id
              WHERE m.organization_id = v_org AND m.user_id = v_user),
    'settings', (SELECT json_build_object('member_budget_percents', member_budget_percents,
                                          'balance_floor', balance_floor, 'topup_threshold', topup_threshold)
                 FROM alert_settings WHERE organization_id = v_org),
    'expired', EXISTS (SELECT 1 FROM grants WHERE organization_id = v_org AND remaining > 0
                       AND expires_at IS NOT NULL AND expires_at <= v_now),
    'money', credits_money(v_org, json_build_array(v_user), p->>'period', v_now));
END
$$
"""

APPLY = """
CREATE OR REPLACE FUNCTION credits_apply_spends(p json) RETURNS json LANGUAGE plpgsql AS $$
DECLARE
  v_org text := p->>'org';
  v_now timestamptz := (p->>'now')::timestamptz;
  v_version bigint;
  v_found json;
  v_count integer;
  v_item json;
  v_alert text;
BEGIN
  -- The account's row lock, the arbiter of every change to the organization's money: held to the commit.
  SELECT xmin::text::bigint INTO v_version FROM accounts WHERE organization_id = v_org FOR UPDATE;
  IF v_version IS NULL OR v_version <> (p->>'version')::bigint THEN
    RETURN json_build_object('conflict', 'version');
  END IF;
  IF EXISTS (SELECT 1 FROM json_to_recordset(p->'usage') AS e(user_id text, period text, used bigint)
             LEFT JOIN member_usage u
               ON u.organization_id = v_org AND u.user_id = e.user_id AND u.period = e.period
             WHERE coalesce(u.used, 0) <> e.used) THEN
    RETURN json_build_object('conflict', 'usage');
  END IF;
  SELECT json_agg(request_id) INTO v_found FROM handled_requests
   WHERE request_id IN (SELECT json_array_elements_text(p->'requests'));
  IF v_found IS NOT NULL THEN
    RETURN json_build_object('handled', v_found);
  END IF;
  SELECT json_agg(json_build_array(k.user_id, k.key)) INTO v_found
    FROM idempotent_requests k JOIN json_to_recordset(p->'answers') AS a(user_id text, key text)
      ON k.user_id = a.user_id AND k.key = a.key;
  IF v_found IS NOT NULL THEN
    RETURN json_build_object('replays', v_found);
  END IF;
  IF json_array_length(p->'entries') = 0 THEN
    RETURN json_build_object('version', v_version);      -- refusals only: checked, nothing to write
  END IF;

  INSERT INTO handled_requests (request_id, handled_at)
    SELECT r, v_now FROM json_array_elements_text(p->'requests') AS r ON CONFLICT DO NOTHING;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  IF v_count <> json_array_length(p->'requests') THEN
    RAISE EXCEPTION 'credits: a request of the batch was handled meanwhile' USING ERRCODE = 'unique_violation';
  END IF;
  UPDATE grants g SET remaining = d.after
    FROM json_to_recordset(p->'draws') AS d(id text, before bigint, after bigint)
   WHERE g.id = d.id AND g.organization_id = v_org AND g.remaining = d.before;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  IF v_count <> json_array_length(p->'draws') THEN
    RAISE EXCEPTION 'credits: account %: grants changed under an unchanged account', v_org;
  END IF;
  INSERT INTO member_usage (organization_id, user_id, period, used, updated_at)
    SELECT v_org, e.user_id, e.period, e.after, e.updated_at
      FROM json_to_recordset(p->'usage') AS e(user_id text, period text, used bigint, after bigint,
                                              updated_at timestamptz)
     WHERE e.after <> e.used
  ON CONFLICT (organization_id, user_id, period) DO UPDATE SET used = excluded.used, updated_at = excluded.updated_at;
  INSERT INTO ledger_entries (id, organization_id, kind, amount, balance_after, actor_id, actor_email, agent_id,
                              grant_id, grant_type, allocations, occurred_at)
    SELECT r.id, r.organization_id, r.kind, r.amount, r.balance_after, r.actor_id, r.actor_email, r.agent_id,
           r.grant_id, r.grant_type, r.allocations, r.occurred_at
      FROM json_array_elements(p->'entries') WITH ORDINALITY AS e(value, n),
           json_populate_record(NULL::ledger_entries, e.value) AS r
     ORDER BY e.n;
  UPDATE accounts SET balance = (p->>'balance')::bigint, updated_at = (p->>'updated_at')::timestamptz
   WHERE organization_id = v_org
  RETURNING xmin::text::bigint INTO v_version;
  FOR v_item IN SELECT value FROM json_array_elements(p->'outbox') LOOP
    IF v_item->'alert' IS NOT NULL THEN       -- raised once per period: its event only if the row went in
      INSERT INTO alerts (id, organization_id, period, kind, user_id, threshold, value, limit_amount, spend_id,
                          raised_at)
        SELECT r.id, r.organization_id, r.period, r.kind, r.user_id, r.threshold, r.value, r.limit_amount,
               r.spend_id, r.raised_at
          FROM json_populate_record(NULL::alerts, v_item->'alert') AS r
      ON CONFLICT (organization_id, period, kind, user_id, threshold) DO NOTHING
      RETURNING id INTO v_alert;
      CONTINUE WHEN v_alert IS NULL;
    END IF;
    INSERT INTO outbox (event_id, type, envelope, created_at)
      VALUES (v_item->'event'->>'event_id', v_item->'event'->>'type', v_item->'event',
              (v_item->'event'->>'occurred_at')::timestamptz);
  END LOOP;
  INSERT INTO idempotent_requests (user_id, key, operation, response, created_at)
    SELECT a.user_id, a.key, a.operation, a.response, v_now
      FROM json_to_recordset(p->'answers') AS a(user_id text, key text, operation text, response json);
  RETURN json_build_object('version', v_version);
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for function in (MONEY, FACTS, APPLY):
        op.execute(function)


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("DROP FUNCTION IF EXISTS credits_apply_spends(json)")
    op.execute("DROP FUNCTION IF EXISTS credits_spend_facts(json)")
    op.execute("DROP FUNCTION IF EXISTS credits_money(text, json, text, timestamptz)")
