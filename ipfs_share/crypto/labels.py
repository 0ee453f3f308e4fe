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
