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
