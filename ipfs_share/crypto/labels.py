"""Every domain-separation label, named once.

A signature or a derived key is bound to its purpose by a label, so bytes signed for one
purpose can never be replayed as another. Labels that ipfs-share defines start with
``ipfs-share/v1/`` (docs/spec/README.md); labels that another protocol fixes keep that
protocol's spelling and say where it is defined. A label is never reused for a second
purpose, and no label is written inline anywhere else.

>>> IPNS_SIGNATURE_V2_PREFIX + b"<dag-cbor data>"
b'ipns-signature:<dag-cbor data>'
"""

from __future__ import annotations

from typing import Final

__all__ = ["IPNS_SIGNATURE_V2_PREFIX"]

# IPNS record spec (specs.ipfs.tech/ipns/ipns-record/), "Record Signing": signatureV2 is
# Ed25519 over this prefix followed by the record's dag-cbor `data` field. The prefix keeps
# a libp2p key's IPNS signatures apart from anything else the same key signs.
IPNS_SIGNATURE_V2_PREFIX: Final = b"ipns-signature:"


# --- envelope and recipient stanzas (docs/spec/envelope.md, docs/spec/keys.md) -----------
# HKDF-SHA-256 `info` strings. Payload and metadata keys come from the same file key and
# payload nonce, so only the label keeps them apart; the wrap label keeps a stanza's key
# apart from any other use of an X25519 shared secret.

__all__ += ["LABEL_METADATA", "LABEL_PAYLOAD", "LABEL_WRAP"]

# payload key = HKDF(file key, payload nonce, LABEL_PAYLOAD, 32): seals the 64 KiB chunks.
LABEL_PAYLOAD: Final = b"ipfs-share/v1/payload"
# metadata key = HKDF(file key, payload nonce, LABEL_METADATA, 32): seals name, type, size.
LABEL_METADATA: Final = b"ipfs-share/v1/metadata"
# wrap key = HKDF(X25519(e, R), E || R, LABEL_WRAP, 32): seals the file key for recipient R.
LABEL_WRAP: Final = b"ipfs-share/v1/x25519-wrap"


# --- signed objects and their keys (docs/spec/identity.md, capsule.md, mailbox.md,
# revocation.md) ------------------------------------------------------------------------
# Signature labels: sig = Ed25519(key, LABEL || dagcbor(object without "sig")). The byte
# after a label is always a CBOR map head (0xa0..0xbb, never ASCII), so no label and
# object can be read as another label and object, even where one label prefixes another.
# Key labels are HKDF `info` strings for keys derived from other secrets.

__all__ += [
    "LABEL_ACK_KEY",
    "LABEL_CAPABILITY",
    "LABEL_CAPSULE",
    "LABEL_CAPSULE_COMMIT",
    "LABEL_IDENTITY",
    "LABEL_MAILBOX_ENTRY",
    "LABEL_MAILBOX_KEY",
    "LABEL_REVOCATION_HEAD",
    "LABEL_REVOCATION_KEY",
]

# Signs an identity document (did, X25519 key, revocation list name) with the identity key.
LABEL_IDENTITY: Final = b"ipfs-share/v1/identity"
# Signs a capsule with its issuer's identity key.
LABEL_CAPSULE: Final = b"ipfs-share/v1/capsule"
# Signs a capability token with the key of the capsule's `cap.issuer`.
LABEL_CAPABILITY: Final = b"ipfs-share/v1/capability"
# Signs a mailbox entry (both kinds: capsule and acknowledgement) with the sender's key.
LABEL_MAILBOX_ENTRY: Final = b"ipfs-share/v1/mailbox-entry"
# Signs a revocation list head with the issuer's identity key.
LABEL_REVOCATION_HEAD: Final = b"ipfs-share/v1/revocation-head"
# commit key = HKDF(file key, "", LABEL_CAPSULE_COMMIT, 32); a capsule's commit is
# HMAC(commit key, SHA-256(dagcbor(capsule without "commit" and "sig"))): only a holder of
# the file key can state the terms (issuer, content, stanzas, expiry, perms, policy, cap)
# under which it opens. ("ipfs-share/v1/commit", the version 1 rule over the content CID
# alone, is retired and never reused.)
LABEL_CAPSULE_COMMIT: Final = b"ipfs-share/v1/capsule-commit"
# revocation IPNS key seed = HKDF(identity ed25519 seed, "", LABEL_REVOCATION_KEY, 32).
LABEL_REVOCATION_KEY: Final = b"ipfs-share/v1/revocation-key"
# mailbox IPNS key seed = HKDF(X25519(s, R), S_ed || R_ed, LABEL_MAILBOX_KEY, 32).
LABEL_MAILBOX_KEY: Final = b"ipfs-share/v1/mailbox-key"
# ack key = HKDF(mailbox seed, "", LABEL_ACK_KEY, 32); an acknowledgement names a capsule by
# HMAC(ack key, capsule CID), so only the two ends of the mailbox can tell which capsule.
LABEL_ACK_KEY: Final = b"ipfs-share/v1/ack-key"

# --- the local keystore (docs/spec/keystore.md) --------------------------------------------
__all__ += ["LABEL_KEYSTORE"]
# AAD of a sealed key file: LABEL_KEYSTORE || dagcbor({"did", "enc"}): binds the sealed
# secrets to the identity they belong to, so they cannot be moved under another name.
LABEL_KEYSTORE: Final = b"ipfs-share/v1/keystore"

# --- mailbox notices (docs/spec/mailbox.md section 7) --------------------------------------
__all__ += ["LABEL_MAILBOX_NOTICE"]
# notice topic = hex(HKDF(mailbox seed, "", LABEL_MAILBOX_NOTICE, 32)): the pubsub topic on
# which a sender announces a new head. Only the two ends hold the seed, so only they can
# name the topic; it is not the mailbox name, so a topic seen on the wire does not give
# the name away either.
LABEL_MAILBOX_NOTICE: Final = b"ipfs-share/v1/mailbox-notice"

# --- introductions (docs/spec/introductions.md) --------------------------------------------
__all__ += ["LABEL_INTRODUCTION", "LABEL_INTRODUCTION_SEAL", "LABEL_INTRODUCTION_TOPIC"]
# Signs an introduction (from, to, sent, nonce) with the sender's identity key.
LABEL_INTRODUCTION: Final = b"ipfs-share/v1/introduction"
# seal key = HKDF(X25519(e, R), E || R, LABEL_INTRODUCTION_SEAL, 32): seals an introduction
# to the recipient's X25519 key, so only the recipient learns who it is from.
LABEL_INTRODUCTION_SEAL: Final = b"ipfs-share/v1/introduction-seal"
# topic = hex(HKDF(recipient ed25519 public key, "", LABEL_INTRODUCTION_TOPIC, 32)): anyone
# who knows a did can name it (that is the point: strangers reach the recipient there).
LABEL_INTRODUCTION_TOPIC: Final = b"ipfs-share/v1/introduction-topic"
# --- keychains (docs/spec/keychain.md) -----------------------------------------------------
__all__ += [
    "LABEL_KEYCHAIN_BOX",
    "LABEL_KEYCHAIN_CHAIN",
    "LABEL_KEYCHAIN_FILE",
    "LABEL_KEYCHAIN_FILE_KEY",
    "LABEL_KEYCHAIN_KEY_FP",
    "LABEL_KEYCHAIN_NAME",
    "LABEL_KEYCHAIN_OP",
    "LABEL_KEYCHAIN_SEAL",
]
# Signs a keychain op (every kind: create, add_key, share, accept, ...) with its author's
# identity key.
LABEL_KEYCHAIN_OP: Final = b"ipfs-share/v1/keychain-op"
# key fingerprint = SHA-256(LABEL_KEYCHAIN_KEY_FP || key): names a keychain key in public
# ops and commits to it, so a delivered key is checked against the fingerprint an op names.
LABEL_KEYCHAIN_KEY_FP: Final = b"ipfs-share/v1/keychain-key-fp"
# AAD of a delivery box: ChaCha20-Poly1305(release key, 0^12, LABEL_KEYCHAIN_BOX, bundle).
LABEL_KEYCHAIN_BOX: Final = b"ipfs-share/v1/keychain-box"
# name key = HKDF(keychain secret, "", LABEL_KEYCHAIN_NAME, 32): seals the keychain's name.
LABEL_KEYCHAIN_NAME: Final = b"ipfs-share/v1/keychain-name"
# AAD prefix of a sealed message: LABEL_KEYCHAIN_SEAL || header || caller's ad.
LABEL_KEYCHAIN_SEAL: Final = b"ipfs-share/v1/keychain-seal"
# chain IPNS key seed = HKDF(identity ed25519 seed, binary keychain CID, LABEL_KEYCHAIN_CHAIN,
# 32): a member's chain of ops in one keychain, which only that member can sign.
LABEL_KEYCHAIN_CHAIN: Final = b"ipfs-share/v1/keychain-chain"
# Signs a keychain file (a file key sealed under a keychain key) with its owner's key.
LABEL_KEYCHAIN_FILE: Final = b"ipfs-share/v1/keychain-file"
# AAD of a keychain file's sealed file key: LABEL_KEYCHAIN_FILE_KEY || binary content CID.
LABEL_KEYCHAIN_FILE_KEY: Final = b"ipfs-share/v1/keychain-file-key"
