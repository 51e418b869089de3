"""The hash chain and its checkpoints (services/audit/chain.py) as an auditor's verifier sees them: a chain
built the documented way verifies; an edit, a deletion, a swap, a cut tail, a rewritten chain and a forged
checkpoint are each named by the first bad seq and a code."""
import copy
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit import chain

ORG = "7d1e8f7a-0000-4000-8000-000000000001"
KEY = Ed25519PrivateKey.generate()


def entries(count=6):
    """A chain of `count` entries, each hashed as the docstring of chain.py says (written out here again, so
    that the test checks the documented encoding and not the module against itself)."""
    made, previous = [], "0" * 64
    for seq in range(1, count + 1):
        entry = {"seq": seq, "prev_hash": previous, "event_id": f"event-{seq}", "type": "organization.renamed",
                 "entity_type": "organization", "entity_id": ORG, "action": "update",
                 "actor": {"id": "dina", "email": "dina@example.com"}, "organization_id": ORG,
                 "correlation_id": None, "occurred_at": f"2026-12-02T10:00:0{seq % 10}.000000Z",
                 "changes": [{"field": "name", "old_value": f"Sehat {seq - 1}", "new_value": f"Sehat {seq} é"}]}
        encoded = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        entry["hash"] = previous = hashlib.sha256(encoded).hexdigest()
        made.append(entry)
    return made


def checkpoint_of(chain_entries, seq, key=KEY):
    return chain.sign_checkpoint(key, ORG, seq, chain_entries[seq - 1]["hash"], "2026-12-02T10:01:00.000000Z")


def verdict(chain_entries, checkpoints=()):
    return chain.verify(sorted(chain_entries, key=lambda e: e["seq"]), checkpoints, KEY.public_key())


def test_a_chain_made_as_documented_is_intact():
    made = entries()
    result = verdict(made, [checkpoint_of(made, 4), checkpoint_of(made, 6)])
    assert result.intact and result.first_bad_seq is None and result.code is None
    assert (result.entries_checked, result.head_seq, result.head_hash) == (6, 6, made[-1]["hash"])
    assert (result.checkpoints_checked, result.latest_checkpoint_seq) == (2, 6)
    assert chain.verify([], [], KEY.public_key()).intact               # an organization with no entry yet


@pytest.mark.parametrize("field, value", [("entity_id", "someone-else"), ("actor", {"id": "mallory"}),
                                          ("occurred_at", "2026-12-01T10:00:00.000000Z"),
                                          ("changes", [{"field": "name", "old_value": "x", "new_value": "y"}])])
def test_an_edited_entry_is_named(field, value):
    made = entries()
    made[2][field] = value
    result = verdict(made)
    assert (result.intact, result.first_bad_seq, result.code) == (False, 3, "hash_mismatch")


def test_an_edited_entry_with_its_hash_recomputed_breaks_the_next_link():
    made = entries()
    made[2]["entity_id"] = "someone-else"
    made[2]["hash"] = chain.entry_hash(made[2])
    result = verdict(made)
    assert (result.first_bad_seq, result.code) == (4, "broken_link")


def test_a_deleted_entry_is_named():
    made = entries()
    del made[2]
    result = verdict(made)
    assert (result.intact, result.first_bad_seq, result.code) == (False, 3, "missing_entry")


def test_swapped_entries_are_named():
    made = entries()
    made[1]["seq"], made[2]["seq"] = 3, 2                   # their places exchanged, contents kept
    result = verdict(made)
    assert (result.first_bad_seq, result.code) == (2, "broken_link")
    made = entries()
    made[1], made[2] = dict(made[2], seq=2), dict(made[1], seq=3)   # renumbered to look in order
    assert verdict(made).first_bad_seq == 2


def test_a_cut_tail_is_found_by_the_checkpoint():
    made = entries()
    signed = checkpoint_of(made, 6)
    result = verdict(made[:4], [signed])
    assert (result.intact, result.first_bad_seq, result.code) == (False, 5, "missing_tail")
    assert verdict(made[:4]).intact                       # without a checkpoint a cut tail cannot be seen


def test_a_rewritten_chain_is_found_by_the_checkpoint():
    made = entries()
    signed = checkpoint_of(made, 5)
    forged = copy.deepcopy(made)
    forged[1]["entity_id"] = "someone-else"
    for entry, before in zip(forged[1:], forged, strict=False):       # every hash after it recomputed
        entry["prev_hash"] = before["hash"]
        entry["hash"] = chain.entry_hash(entry)
    result = verdict(forged, [signed])
    assert (result.first_bad_seq, result.code) == (5, "checkpoint_mismatch")


def test_a_checkpoint_not_signed_by_the_key_is_refused():
    made = entries()
    other_key = Ed25519PrivateKey.generate()
    assert verdict(made, [checkpoint_of(made, 6, other_key)]).code == "bad_signature"
    tampered = dict(checkpoint_of(made, 6), seq=5)
    assert (verdict(made, [tampered]).code, verdict(made, [tampered]).first_bad_seq) == ("bad_signature", 5)


def test_the_offline_command_verifies_an_export_with_the_public_key_only(tmp_path, capsys):
    made = entries()
    key_file = tmp_path / "audit-public-key.pem"
    key_file.write_text(chain.public_pem(KEY.public_key()))
    export = {"organization_id": ORG, "complete": True, "entries": list(reversed(made)),   # newest first
              "checkpoints": [checkpoint_of(made, 6)]}
    (tmp_path / "audit.json").write_text(json.dumps(export))
    assert chain.main([str(tmp_path / "audit.json"), "--public-key", str(key_file)]) == 0
    assert capsys.readouterr().out.startswith("intact: 6 entries")
    export["entries"][0]["changes"][0]["new_value"] = "Forged"
    (tmp_path / "audit.json").write_text(json.dumps(export))
    assert chain.main([str(tmp_path / "audit.json"), "--public-key", str(key_file)]) == 1
    assert "first bad seq 6 (hash_mismatch)" in capsys.readouterr().out
    export["complete"] = False
    assert chain.verify_export(export, KEY.public_key()).code == "partial_export"
