"""A tamper-evident audit trail (SPEC §13), end to end on both backends: each organization's entries chained
as they are stored, the chain heads signed every AUDIT_CHECKPOINT_SECONDS (1 s here), verification through
the API and, offline, by chain.py alone (copied into an empty folder) with the export and the public key;
tampering done straight in the audit database (an edited field, a deleted entry, two entries swapped, the
tail cut off) named by both at its first bad seq; and one unbroken chain from two audit processes taking
200 concurrent changes of one organization."""
import shutil
import subprocess
import sys
import time
from pathlib import Path

import eventlet
import pytest
import requests
from sqlalchemy import delete, select, update

from common.db import Store
from services.audit.models import AuditChange, AuditEntry
from tests.e2e.helpers import audit_entries, create_organization, ok, path, wait_for

CHAIN_PY = Path(__file__).resolve().parents[2] / "services" / "audit" / "chain.py"


def organization_with_history(system, renames=5):
    """An organization with its founding entries and `renames` more, all stored and covered by a signed
    checkpoint; (owner, organization id, number of entries)."""
    owner = system.user("dina")
    org = create_organization(owner, "Sehat Clinic")["id"]
    for number in range(renames):
        ok(owner.patch(path(org), json={"name": f"Sehat Clinic {number}"}))
    entries = wait_for(lambda: (lambda found: found if sum(e["type"] == "organization.renamed" for e in found)
                                == renames else None)(audit_entries(owner, org)), message="every entry stored")
    wait_for(lambda: [c for c in ok(owner.get(path(org, "/audit/checkpoints")))["items"] if c["seq"] == len(entries)]
             or None, message="a checkpoint of the head")
    return owner, org, len(entries)


def verify(api, org):
    return ok(api.get(path(org, "/audit/verify")))


def offline(tmp_path, api, org):
    """The offline command's verdict on a fresh export: chain.py alone in an empty folder (it needs only the
    standard library and cryptography), the export and the public key, nothing else of the platform."""
    folder = tmp_path / f"auditor-{org[:8]}"
    folder.mkdir(exist_ok=True)
    shutil.copyfile(CHAIN_PY, folder / "verify_audit.py")
    export = api.get(path(org, "/audit"), params={"format": "json"})
    assert export.status_code == 200 and "attachment" in export.headers["Content-Disposition"]
    (folder / "audit.json").write_bytes(export.content)
    public_key = ok(api.get("/v1/audit/public-key"))
    (folder / "public.pem").write_text(public_key["pem"])
    done = subprocess.run([sys.executable, "-I", "verify_audit.py", "audit.json", "--public-key", "public.pem"],
                          cwd=folder, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    return done.returncode, done.stdout + done.stderr


def test_entries_are_chained_signed_and_verified(system, tmp_path):
    owner, org, count = organization_with_history(system)
    entries = sorted(audit_entries(owner, org), key=lambda e: e["seq"])
    assert [e["seq"] for e in entries] == list(range(1, count + 1)) and count >= 6
    assert entries[0]["prev_hash"] == "0" * 64
    assert all(later["prev_hash"] == earlier["hash"] for earlier, later in zip(entries, entries[1:], strict=False))
    verdict = verify(owner, org)
    assert verdict == {"intact": True, "entries_checked": count, "head_seq": count, "head_hash": entries[-1]["hash"],
                       "checkpoints_checked": 1, "latest_checkpoint_seq": count, "first_bad_seq": None,
                       "code": None, "reason": None}
    key = ok(requests.get(f"{system.url}/v1/audit/public-key", timeout=30))        # public: no token needed
    assert key["algorithm"] == "Ed25519" and key["pem"].startswith("-----BEGIN PUBLIC KEY-----")
    [checkpoint] = [c for c in ok(owner.get(path(org, "/audit/checkpoints")))["items"] if c["seq"] == count]
    assert checkpoint["key_id"] == key["key_id"] and checkpoint["hash"] == entries[-1]["hash"]
    export = ok(owner.get(path(org, "/audit"), params={"format": "json"}))
    assert export["complete"] is True and len(export["entries"]) == count and export["checkpoints"]
    assert ok(owner.get(path(org, "/audit"), params={"format": "json", "action": "update"}))["complete"] is False
    code, said = offline(tmp_path, owner, org)
    assert code == 0 and said.startswith(f"intact: {count} entries"), said

    # Only Owner/Admin (and keys with audit:read) verify; another organization's owner learns nothing.
    stranger = system.user("stranger")
    create_organization(stranger)
    trail = stranger.get(path(org, "/audit"))                       # what the trail itself answers a stranger
    assert trail.status_code == 404
    for route in ("/audit/verify", "/audit/checkpoints"):
        refused = stranger.get(path(org, route))
        assert (refused.status_code, refused.json()) == (404, trail.json())


def tamper(system, org, change):
    store = Store(system.database_url("audit"))
    with store.write() as session:
        seq_of = {chain_seq: seq for seq, chain_seq in session.execute(
            select(AuditEntry.seq, AuditEntry.chain_seq).where(AuditEntry.organization_id == org))}
        change(session, seq_of)
    store.engine.dispose()


def edit_a_field(session, seq_of):
    session.execute(update(AuditEntry).where(AuditEntry.seq == seq_of[3]).values(actor_id="mallory"))


def edit_a_changed_value(session, seq_of):
    session.execute(update(AuditChange).where(AuditChange.entry_seq == seq_of[3]).values(new_value="Forged"))


def delete_an_entry(session, seq_of):
    session.execute(delete(AuditChange).where(AuditChange.entry_seq == seq_of[3]))
    session.execute(delete(AuditEntry).where(AuditEntry.seq == seq_of[3]))


def swap_two_entries(session, seq_of):
    """Entries 3 and 4 exchange their places in the chain (their positions; contents and hashes kept)."""
    session.execute(update(AuditEntry).where(AuditEntry.seq == seq_of[3]).values(chain_seq=-3))
    session.execute(update(AuditEntry).where(AuditEntry.seq == seq_of[4]).values(chain_seq=3))
    session.execute(update(AuditEntry).where(AuditEntry.seq == seq_of[3]).values(chain_seq=4))


def cut_the_tail(session, seq_of):
    for chain_seq in range(3, max(seq_of) + 1):
        session.execute(delete(AuditChange).where(AuditChange.entry_seq == seq_of[chain_seq]))
        session.execute(delete(AuditEntry).where(AuditEntry.seq == seq_of[chain_seq]))


@pytest.mark.parametrize("change, code", [(edit_a_field, "hash_mismatch"), (edit_a_changed_value, "hash_mismatch"),
                                          (delete_an_entry, "missing_entry"), (swap_two_entries, "broken_link"),
                                          (cut_the_tail, "missing_tail")])
def test_tampering_in_the_database_is_named_online_and_offline(system, tmp_path, change, code):
    owner, org, _ = organization_with_history(system)
    tamper(system, org, change)
    verdict = verify(owner, org)
    assert (verdict["intact"], verdict["first_bad_seq"], verdict["code"]) == (False, 3, code), verdict
    returned, said = offline(tmp_path, owner, org)
    assert returned == 1 and f"first bad seq 3 ({code})" in said, said


def test_two_audit_processes_keep_one_unbroken_chain(system):
    """200 changes of one organization sent at once while two audit processes share the event queue."""
    owner = system.user("owner")
    org = create_organization(owner, "Busy Clinic")["id"]
    agent = ok(owner.post(path(org, "/agents"), json={"name": "Triage"}), 201)["id"]
    before = len(wait_for(lambda: (lambda found: found if any(e["type"] == "agent.created" for e in found) else None)(
        audit_entries(owner, org)), message="the agent's entry"))
    system.start("audit", replica=2)
    try:
        time.sleep(3)                                   # the second process is consuming
        def change(number):
            if number % 2:
                return owner.patch(path(org), json={"name": f"Busy Clinic {number}"}).status_code
            return owner.patch(path(org, f"/agents/{agent}"), json={"instructions": f"Step {number}"}).status_code

        assert set(eventlet.GreenPool(20).imap(change, range(200))) == {200}
        total = before + 200
        entries = wait_for(lambda: (lambda found: found if len(found) >= total else None)(audit_entries(owner, org)),
                           timeout=60, message=f"all {total} entries")
    finally:
        system.stop("audit-2")
    assert sorted(e["seq"] for e in entries) == list(range(1, total + 1))
    assert len({e["prev_hash"] for e in entries}) == total              # no fork: no two share a predecessor
    verdict = verify(owner, org)
    assert verdict["intact"] and verdict["head_seq"] == total, verdict
