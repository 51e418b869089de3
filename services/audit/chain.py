"""The audit trail's hash chain and signed checkpoints (SPEC §13), and their verification.

This module needs only Python's standard library and `cryptography`: an auditor can copy this one file
and verify an exported trail with the platform's public key and nothing else:

    python chain.py audit-<org>.json --public-key audit-public-key.pem

The chain. Each organization's entries are numbered in the order the audit service stored them: `seq`
1, 2, 3... (entries without an organization form a chain of their own). Every entry carries
`prev_hash`, the `hash` of the entry before it in its chain (GENESIS, 64 zeros, for seq 1), and its
own `hash`:

    hash = hex(SHA-256(canonical({k: entry[k] for k in HASHED_FIELDS})))

where `entry` is the entry exactly as the API answers it and exports it (times as
2026-11-23T14:11:15.123456Z, `actor` an object with `id` and, when known, `email` and `name`,
`changes` a list of {"field", "old_value", "new_value"} in the order stored), and `canonical` is JSON
with keys sorted, no whitespace, non-ASCII characters as themselves, encoded as UTF-8
(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")).
Editing an entry changes its hash; deleting or reordering entries breaks the numbering or a link.

Checkpoints. The audit service signs each chain's head now and then (at most once a minute, when it
moved): a checkpoint is {"organization_id", "seq", "hash", "signed_at", "key_id"} and `signature`, the
Ed25519 signature (base64) of canonical() of those five fields. `key_id` is the first 16 hex digits of
SHA-256 of the raw 32-byte public key. A checkpoint pins the chain up to its seq: rewriting the entries
and their hashes, or cutting off the tail, no longer matches what was signed.
"""
import argparse
import base64
import hashlib
import json
import sys
from dataclasses import asdict, dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

GENESIS = "0" * 64
HASHED_FIELDS = ("seq", "prev_hash", "event_id", "type", "entity_type", "entity_id", "action", "actor",
                 "organization_id", "correlation_id", "occurred_at", "changes")
SIGNED_FIELDS = ("organization_id", "seq", "hash", "signed_at", "key_id")


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(entry):
    """The hash of an entry (a dict in the API's shape, with `seq` and `prev_hash`)."""
    if len(entry) != len(HASHED_FIELDS) or any(k not in entry for k in HASHED_FIELDS):
        entry = {k: entry.get(k) for k in HASHED_FIELDS}
    return hashlib.sha256(canonical(entry)).hexdigest()


# ---- keys and signatures -------------------------------------------------------------------------
def key_id(public_key):
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public_key):
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def load_public_key(pem_text):
    key = serialization.load_pem_public_key(pem_text.encode("ascii") if isinstance(pem_text, str) else pem_text)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the public key is not an Ed25519 key")
    return key


def load_private_key(pem_bytes):
    key = serialization.load_pem_private_key(pem_bytes, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the signing key is not an Ed25519 private key")
    return key


def new_private_key_pem():
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def sign_checkpoint(private_key, organization_id, seq, head_hash, signed_at):
    """A checkpoint of a chain's head (`signed_at` as the API writes times)."""
    checkpoint = {"organization_id": organization_id, "seq": seq, "hash": head_hash, "signed_at": signed_at,
                  "key_id": key_id(private_key.public_key())}
    signature = private_key.sign(canonical({k: checkpoint[k] for k in SIGNED_FIELDS}))
    return dict(checkpoint, signature=base64.b64encode(signature).decode("ascii"))


def signature_holds(public_key, checkpoint):
    try:
        public_key.verify(base64.b64decode(checkpoint["signature"], validate=True),
                          canonical({k: checkpoint.get(k) for k in SIGNED_FIELDS}))
        return True
    except (InvalidSignature, ValueError, TypeError, KeyError):
        return False


# ---- verification --------------------------------------------------------------------------------
@dataclass
class Verdict:
    """What verifying a chain found: intact, or the first bad seq, why (`code`, `reason`)."""
    intact: bool
    entries_checked: int
    head_seq: int | None
    head_hash: str | None
    checkpoints_checked: int
    latest_checkpoint_seq: int | None
    first_bad_seq: int | None = None
    code: str | None = None
    reason: str | None = None

    def as_dict(self):
        return asdict(self)


class _Broken(Exception):
    def __init__(self, seq, code, reason):
        super().__init__(reason)
        self.seq, self.code, self.reason = seq, code, reason


def verify(entries, checkpoints=(), public_key=None):
    """Verify one chain: `entries` in seq order (an iterable, read once: a long chain need not be in
    memory), all of the chain from seq 1; `checkpoints` of that chain, checked against the entries (and
    their signatures, with `public_key`). Returns a Verdict naming the first bad seq."""
    checkpoints = sorted(checkpoints, key=lambda c: c["seq"])
    pinned = {c["seq"]: c for c in checkpoints}
    expected_seq, previous, checked, hashes_at = 1, GENESIS, 0, {}
    try:
        for checkpoint in checkpoints:
            if public_key is not None and not signature_holds(public_key, checkpoint):
                raise _Broken(checkpoint["seq"], "bad_signature",
                              f"the checkpoint of seq {checkpoint['seq']} is not signed by this key")
        for entry in entries:
            seq = entry.get("seq")
            if seq != expected_seq:
                raise _Broken(expected_seq, "missing_entry" if isinstance(seq, int) and seq > expected_seq
                              else "out_of_order", f"entry seq {expected_seq} was expected, seq {seq} found: "
                              "an entry was deleted or the entries were reordered")
            if entry.get("prev_hash") != previous:
                raise _Broken(seq, "broken_link", f"entry seq {seq} does not name the hash of entry seq {seq - 1}: "
                                                  "an entry before it was changed, removed or moved")
            if entry_hash(entry) != entry.get("hash"):
                raise _Broken(seq, "hash_mismatch", f"entry seq {seq} does not match its hash: it was changed "
                                                    "after it was stored")
            if seq in pinned and pinned[seq]["hash"] != entry["hash"]:
                raise _Broken(seq, "checkpoint_mismatch", f"entry seq {seq} is not the one the checkpoint "
                                                          "signed: the chain was rewritten up to here")
            previous, expected_seq, checked = entry["hash"], seq + 1, checked + 1
            if seq in pinned:
                hashes_at[seq] = entry["hash"]
        beyond = [c for c in checkpoints if c["seq"] >= expected_seq]
        if beyond:
            raise _Broken(expected_seq, "missing_tail", f"a checkpoint signed seq {beyond[-1]['seq']}, but the "
                                                        f"chain ends at seq {expected_seq - 1}: entries were "
                                                        "cut off its end")
    except _Broken as broken:
        return Verdict(False, checked, expected_seq - 1 or None, previous if checked else None, len(checkpoints),
                       checkpoints[-1]["seq"] if checkpoints else None, broken.seq, broken.code, broken.reason)
    return Verdict(True, checked, expected_seq - 1 or None, previous if checked else None, len(checkpoints),
                   checkpoints[-1]["seq"] if checkpoints else None)


def verify_export(document, public_key):
    """An exported trail (the JSON download: {"organization_id", "complete", "entries", "checkpoints"}):
    the Verdict. A partial export (filtered, or cut at the download limit) cannot be checked for what is
    missing: it is refused as such."""
    if not document.get("complete"):
        return Verdict(False, 0, None, None, 0, None, None, "partial_export",
                       "this export is filtered or cut at the download limit: only a complete export "
                       "(no filters) can be verified")
    entries = sorted(document.get("entries") or [], key=lambda e: e.get("seq") or 0)
    return verify(entries, document.get("checkpoints") or [], public_key)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Verify an exported audit trail (SPEC §13) offline.")
    parser.add_argument("export", help="the JSON export: GET /v1/organizations/{org}/audit?format=json")
    parser.add_argument("--public-key", required=True,
                        help="the platform's public key, PEM (GET /v1/audit/public-key, field `pem`)")
    args = parser.parse_args(argv)
    with open(args.public_key, encoding="ascii") as key_file:
        public_key = load_public_key(key_file.read())
    with open(args.export, encoding="utf-8") as export_file:
        verdict = verify_export(json.load(export_file), public_key)
    if verdict.intact:
        print(f"intact: {verdict.entries_checked} entries (seq 1 to {verdict.head_seq or 0}), "
              f"{verdict.checkpoints_checked} signed checkpoints, the latest at seq {verdict.latest_checkpoint_seq}")
        return 0
    print(f"NOT INTACT: first bad seq {verdict.first_bad_seq} ({verdict.code}): {verdict.reason}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
