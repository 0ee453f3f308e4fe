"""Generate the capsule and capability token vectors (docs/spec/capsule.md).

Run from the repository root: ``.venv/bin/python tests/vectors/capsule/generate.py``.

``kind: capsule`` -- the body is a capsule. The reader decodes it (``issuer``, when
present, is the signer it expects), then, when the fields are present, checks expiry at
``now``, unwraps with the X25519 secret ``identity`` and checks the commitment;
``file_key`` and ``cid`` pin the success result. ``original`` (hex), when present, is the
capsule a forged one was made from (the re-signed copies), for the record.

``kind: capability`` -- the body is a capability token (absent: no token given). With a
``capsule`` field (hex of a capsule) the reader runs the open step ``require_capability``
for ``audience`` at ``now``; without, it only decodes the token.

Capsules too big to keep as text (over 100 KiB) are stored as ``body_zlib``, the body
compressed with zlib (level 9), instead of a body.
"""

from __future__ import annotations

import hmac
import sys
import zlib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import vectorfile  # noqa: E402

from ipfs_share.crypto.hkdf import hkdf  # noqa: E402
from ipfs_share.crypto.labels import LABEL_CAPABILITY, LABEL_CAPSULE  # noqa: E402
from ipfs_share.crypto.random import DeterministicRng  # noqa: E402
from ipfs_share.crypto.signing import SigningKey  # noqa: E402
from ipfs_share.crypto.stream import FileKey  # noqa: E402
from ipfs_share.crypto.x25519 import EncryptionKey  # noqa: E402
from ipfs_share.formats import dagcbor  # noqa: E402
from ipfs_share.formats.capsule import (  # noqa: E402
    MAX_CAPSULE_SIZE,
    MAX_STANZAS,
    Capsule,
    Perms,
    Policy,
    build_capsule,
    commitment,
    make_capability,
    terms_digest,
)
from ipfs_share.formats.dagcbor import Link  # noqa: E402
from ipfs_share.formats.signed import did_key  # noqa: E402

CREATED = 1_800_000_000
EXPIRES = CREATED + 7 * 86_400
# The content: the CID of a UnixFS file (dag-pb root), as `ipfs add` would give it.
CONTENT = "bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
_TEXT_LIMIT = 100 * 1024
# The retired commitment label of version 1 capsules (commit = HMAC(HKDF(file key, "",
# this, 32), binary content CID)): only to write the faithful version 1 vector.
_V1_COMMIT_LABEL = b"ipfs-share/v1/commit"


class Scenario:
    """The keys of one scenario, all drawn from the scenario's own rng."""

    def __init__(self, name: str) -> None:
        self.rng = DeterministicRng(b"ipfs-share/vectors/capsule/" + name.encode())
        self.issuer = SigningKey.generate(self.rng)
        self.me = EncryptionKey.generate(self.rng)
        self.file_key = FileKey.generate(self.rng)

    def capsule(self, **over: Any) -> Capsule:
        args: dict[str, Any] = {
            "content": CONTENT,
            "file_key": self.file_key,
            "recipients": [self.me.public_key],
            "created": CREATED,
            "expires": EXPIRES,
            "rng": self.rng,
        }
        args.update(over)
        return build_capsule(self.issuer, **args)

    def fields(self, capsule: Capsule) -> dict[str, Any]:
        return dict(dagcbor.decode(capsule.data))


def _signed(value: dict[str, Any], key: SigningKey, label: bytes = LABEL_CAPSULE) -> bytes:
    """Sign any map as a capsule (or token) would be: for objects the encoder refuses."""
    body = {k: v for k, v in value.items() if k != "sig"}
    body["sig"] = key.sign(label + dagcbor.encode(body))
    return dagcbor.encode(body)


def _dump(fields: dict[str, Any], body: bytes | None) -> str:
    if body is not None and len(body) > _TEXT_LIMIT:
        return vectorfile.dump({**fields, "body_zlib": zlib.compress(body, 9)})
    return vectorfile.dump(fields, body=body)


def build() -> dict[str, str]:
    """Scenario name -> file text."""
    files: dict[str, str] = {}

    def capsule_vector(name: str, expect: str, comment: str, body: bytes, **extra: Any) -> None:
        files[name] = _dump(
            {"expect": expect, "kind": "capsule", "comment": comment, **extra}, body
        )

    s = Scenario("success")
    capsule = s.capsule()
    capsule_vector(
        "success",
        "success",
        "one recipient; opened one second before it expires",
        capsule.data,
        issuer=capsule.issuer,
        now=EXPIRES - 1,
        identity=s.me.secret_bytes(),
        file_key=s.file_key.secret_bytes(),
        cid=capsule.cid,
    )

    s = Scenario("success_all_fields")
    others = [EncryptionKey.generate(s.rng).public_key for _ in range(4)]
    vault = SigningKey.generate(s.rng)
    capsule = s.capsule(
        recipients=[others[0], others[1], s.me.public_key, others[2], others[3]],
        expires=None,
        perms=Perms(download=False),
        policy=Policy("org.example.office-hours", {"tz": "Europe/Paris", "hours": [9, 17]}),
        cap_issuer=did_key(vault.public_key),
    )
    capsule_vector(
        "success_all_fields",
        "success",
        "five recipients (ours third), no expiry, policy, capability requirement, perms",
        capsule.data,
        now=CREATED + 10**9,
        identity=s.me.secret_bytes(),
        file_key=s.file_key.secret_bytes(),
        cid=capsule.cid,
    )

    s = Scenario("bad_signature")
    data = bytearray(s.capsule().data)
    data[data.index(b"\x63sig\x58\x40") + 6] ^= 0x80
    capsule_vector("bad_signature", "signature_invalid", "one bit of sig flipped", bytes(data))

    s = Scenario("wrong_signer")
    other = SigningKey.generate(s.rng)
    capsule_vector(
        "wrong_signer",
        "signature_invalid",
        "a valid capsule by another issuer than the reader expects",
        s.capsule().data,
        issuer=did_key(other.public_key),
    )

    s = Scenario("forged_issuer")
    other = SigningKey.generate(s.rng)
    capsule_vector(
        "forged_issuer",
        "signature_invalid",
        "names one issuer but is signed by another key",
        _signed(s.fields(s.capsule()), other),
    )

    s = Scenario("unknown_version")
    capsule_vector(
        "unknown_version",
        "format_invalid",
        "v is 3 (validly signed)",
        _signed({**s.fields(s.capsule()), "v": 3}, s.issuer),
    )

    s = Scenario("version_1")
    # What the version 1 code wrote: perms with "reshare", and a commitment over the content
    # CID alone. Refused by its version, before anything else: a reader that accepted it
    # would accept re-signed copies of it under any terms.
    value = s.fields(s.capsule())
    v1_key = hkdf(s.file_key.secret_bytes(), salt=b"", info=_V1_COMMIT_LABEL, length=32)
    value.update(
        v=1,
        perms={"download": True, "reshare": False},
        commit=hmac.digest(v1_key, bytes(Link(CONTENT)), "sha256"),
    )
    capsule_vector(
        "version_1",
        "format_invalid",
        "a faithful version 1 capsule (commitment over the content CID only; validly signed)",
        _signed(value, s.issuer),
        now=CREATED,
        identity=s.me.secret_bytes(),
    )

    s = Scenario("extra_field")
    capsule_vector(
        "extra_field",
        "format_invalid",
        "an unknown top-level key 'note' (validly signed)",
        _signed({**s.fields(s.capsule()), "note": "hi"}, s.issuer),
    )

    s = Scenario("extra_perm")
    value = s.fields(s.capsule())
    value["perms"] = {**value["perms"], "reshare": True}
    capsule_vector(
        "extra_perm",
        "format_invalid",
        "perms.reshare, which version 2 dropped (validly signed): nested maps are closed too",
        _signed(value, s.issuer),
    )

    s = Scenario("missing_field")
    value = s.fields(s.capsule())
    del value["commit"]
    capsule_vector(
        "missing_field", "format_invalid", "no 'commit' (validly signed)", _signed(value, s.issuer)
    )

    s = Scenario("oversize_stanzas")
    value = s.fields(s.capsule())
    value["stanzas"] = value["stanzas"] * (MAX_STANZAS + 1)
    data = _signed(value, s.issuer)
    assert len(data) < MAX_CAPSULE_SIZE
    capsule_vector(
        "oversize_stanzas",
        "format_invalid",
        f"{MAX_STANZAS + 1} stanzas ({len(data)} bytes, under the size limit; validly signed)",
        data,
    )

    s = Scenario("oversize_stanzas_bad_signature")
    value = s.fields(s.capsule())
    value["stanzas"] = value["stanzas"] * (MAX_STANZAS + 1)
    value["sig"] = bytes(64)
    capsule_vector(
        "oversize_stanzas_bad_signature",
        "format_invalid",
        "too many stanzas and a zero sig: the count is checked before any crypto",
        dagcbor.encode(value),
    )

    s = Scenario("oversize_bytes")
    value = s.fields(s.capsule())
    value["policy"] = {"provider": "org.example.big", "params": {"blob": bytes(MAX_CAPSULE_SIZE)}}
    capsule_vector(
        "oversize_bytes",
        "format_invalid",
        "over 1 MiB (a 1 MiB policy parameter; validly signed): refused before parsing",
        _signed(value, s.issuer),
    )

    s = Scenario("short_stanza")
    value = s.fields(s.capsule())
    value["stanzas"] = [value["stanzas"][0][:79]]
    capsule_vector(
        "short_stanza",
        "format_invalid",
        "a 79-byte stanza (validly signed)",
        _signed(value, s.issuer),
    )

    s = Scenario("no_stanzas")
    value = s.fields(s.capsule())
    value["stanzas"] = []
    capsule_vector(
        "no_stanzas",
        "format_invalid",
        "an empty stanza list (validly signed)",
        _signed(value, s.issuer),
    )

    s = Scenario("content_not_unixfs")
    value = s.fields(s.capsule())
    value["content"] = Link("bafyreifqwkmiw256ojf2zws6tzjeonw6bpd5vza4i22ccpcq4hjv2ts7cm")
    capsule_vector(
        "content_not_unixfs",
        "format_invalid",
        "content links a dag-cbor block, not a raw or dag-pb one (validly signed)",
        _signed(value, s.issuer),
    )

    s = Scenario("expires_before_created")
    value = s.fields(s.capsule())
    value["expires"] = CREATED
    capsule_vector(
        "expires_before_created",
        "format_invalid",
        "expires equal to created (validly signed)",
        _signed(value, s.issuer),
    )

    s = Scenario("expired")
    capsule = s.capsule()
    capsule_vector(
        "expired",
        "share_expired",
        "opened at exactly expires: a share is valid only before it",
        capsule.data,
        now=EXPIRES,
        identity=s.me.secret_bytes(),
    )

    s = Scenario("not_a_recipient")
    capsule = s.capsule(recipients=[EncryptionKey.generate(s.rng).public_key])
    capsule_vector(
        "not_a_recipient",
        "recipient_not_authorized",
        "the only stanza is for another key",
        capsule.data,
        now=CREATED,
        identity=s.me.secret_bytes(),
    )

    s = Scenario("commitment_mismatch")
    # A malicious issuer wraps one key for us but commits to another (which it could wrap
    # for someone else): validly signed, unwraps, and must still be refused.
    decoy = FileKey.generate(s.rng)
    value = s.fields(s.capsule())
    value["commit"] = commitment(decoy, terms_digest(value))
    capsule_vector(
        "commitment_mismatch",
        "key_unwrap_failed",
        "our stanza unwraps, but commit is for another file key (validly signed)",
        _signed(value, s.issuer),
        now=CREATED,
        identity=s.me.secret_bytes(),
    )

    s = Scenario("commitment_other_content")
    value = s.fields(s.capsule())
    value["content"] = Link("bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq")
    capsule_vector(
        "commitment_other_content",
        "key_unwrap_failed",
        "the right key, but the capsule was re-pointed at other content (validly signed)",
        _signed(value, s.issuer),
        now=CREATED,
        identity=s.me.secret_bytes(),
    )

    _resigned_copies(files, capsule_vector)
    _capabilities(files)
    return files


def _resigned_copies(files: dict[str, str], capsule_vector: Any) -> None:
    """Forgeries by someone without the file key, from a capsule that names them nowhere."""
    s = Scenario("resigned_copy")
    mallory = SigningKey.generate(s.rng)
    vault = SigningKey.generate(s.rng)
    original = s.capsule(
        perms=Perms(download=False),
        policy=Policy("ipfs-share/window", {"expires": EXPIRES}),
        cap_issuer=did_key(vault.public_key),
    )
    # The attack: copy the stanzas and the commitment, sign them as oneself with no expiry,
    # no policy, no capability, downloads allowed. The signature is valid and every check
    # before the unwrap passes; only the commitment (which covers issuer and terms) fails.
    value = s.fields(original)
    value.update(
        issuer=did_key(mallory.public_key),
        expires=None,
        perms={"download": True},
        policy=None,
        cap=None,
    )
    capsule_vector(
        "resigned_copy",
        "key_unwrap_failed",
        "a non-recipient copied stanzas and commit and signed them as herself, with looser terms",
        _signed(value, mallory),
        original=original.data,
        issuer=did_key(mallory.public_key),
        now=EXPIRES + 1,
        identity=s.me.secret_bytes(),
    )

    s = Scenario("resigned_copy_same_terms")
    mallory = SigningKey.generate(s.rng)
    original = s.capsule()
    value = s.fields(original)
    value["issuer"] = did_key(mallory.public_key)
    capsule_vector(
        "resigned_copy_same_terms",
        "key_unwrap_failed",
        "the same terms signed by another identity: the commitment binds the issuer too",
        _signed(value, mallory),
        original=original.data,
        now=CREATED,
        identity=s.me.secret_bytes(),
    )

    s = Scenario("commitment_other_terms")
    value = s.fields(s.capsule())
    value["expires"] = None
    capsule_vector(
        "commitment_other_terms",
        "key_unwrap_failed",
        "the issuer's own capsule with its expiry dropped and the old commit kept (signed)",
        _signed(value, s.issuer),
        now=CREATED,
        identity=s.me.secret_bytes(),
    )


def _capabilities(files: dict[str, str]) -> None:
    def token_vector(
        name: str, expect: str, comment: str, body: bytes | None, **extra: Any
    ) -> None:
        files[name] = _dump(
            {"expect": expect, "kind": "capability", "comment": comment, **extra}, body
        )

    s = Scenario("capability")
    vault = SigningKey.generate(s.rng)
    holder = SigningKey.generate(s.rng)
    vault_did, holder_did = did_key(vault.public_key), did_key(holder.public_key)
    capsule = s.capsule(cap_issuer=vault_did)
    other_capsule = s.capsule(cap_issuer=vault_did, expires=None)
    nbf, exp = CREATED, CREATED + 3600

    def token(**over: Any) -> bytes:
        args: dict[str, Any] = {"aud": holder_did, "capsule": capsule.cid, "nbf": nbf, "exp": exp}
        args.update(over)
        return make_capability(vault, **args).data

    common = {"capsule": capsule.data, "audience": holder_did}
    token_vector(
        "capability_success",
        "success",
        "a token from cap.issuer, in its window",
        token(),
        now=nbf,
        **common,
    )
    token_vector(
        "capability_missing",
        "capability_required",
        "the capsule names cap; no token given",
        None,
        now=nbf,
        **common,
    )
    token_vector(
        "capability_expired",
        "capability_invalid",
        "used at exactly exp: [nbf, exp) is half open",
        token(),
        now=exp,
        **common,
    )
    token_vector(
        "capability_not_yet_valid",
        "capability_invalid",
        "used one second before nbf",
        token(),
        now=nbf - 1,
        **common,
    )
    token_vector(
        "capability_wrong_capsule",
        "capability_invalid",
        "a valid token for another capsule",
        token(capsule=other_capsule.cid),
        now=nbf,
        **common,
    )
    token_vector(
        "capability_wrong_audience",
        "capability_invalid",
        "a valid token for another audience",
        token(aud=vault_did),
        now=nbf,
        **common,
    )
    token_vector(
        "capability_wrong_issuer",
        "capability_invalid",
        "validly signed by the holder itself, not by cap.issuer",
        make_capability(holder, aud=holder_did, capsule=capsule.cid, nbf=nbf, exp=exp).data,
        now=nbf,
        **common,
    )
    data = bytearray(token())
    data[data.index(b"\x63sig\x58\x40") + 6] ^= 0x01
    token_vector(
        "capability_bad_signature_in_open",
        "capability_invalid",
        "a flipped sig bit, met while opening: every bad token is capability_invalid there",
        bytes(data),
        now=nbf,
        **common,
    )
    token_vector(
        "capability_bad_signature",
        "signature_invalid",
        "the codec alone: a flipped sig bit",
        bytes(data),
    )
    value = dict(dagcbor.decode(token()))
    token_vector(
        "capability_unknown_version",
        "format_invalid",
        "v is 2 (validly signed)",
        _signed({**value, "v": 2}, vault, LABEL_CAPABILITY),
    )
    token_vector(
        "capability_extra_field",
        "format_invalid",
        "an unknown key 'scope' (validly signed)",
        _signed({**value, "scope": "all"}, vault, LABEL_CAPABILITY),
    )
    missing = {k: v for k, v in value.items() if k != "aud"}
    token_vector(
        "capability_missing_field",
        "format_invalid",
        "no 'aud' (validly signed)",
        _signed(missing, vault, LABEL_CAPABILITY),
    )
    token_vector(
        "capability_unknown_ability",
        "format_invalid",
        "ability 'share' (validly signed)",
        _signed({**value, "ability": "share"}, vault, LABEL_CAPABILITY),
    )


def main() -> None:
    for name, text in build().items():
        (HERE / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
