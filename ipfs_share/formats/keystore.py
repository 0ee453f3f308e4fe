"""Key files: one identity's secret keys, sealed under a passphrase (docs/spec/keystore.md).

A key file is a strict dag-cbor map::

    {"v": 1, "name": str, "did": did:key, "enc": X25519 public key (32 bytes),
     "created": uint, "kdf": null | {"alg": "argon2id13", "ops", "mem", "salt"},
     "nonce": null | bytes(24), "secret": bytes}

``secret`` is ed25519 seed (32) || x25519 secret (32): sealed with
:func:`ipfs_share.crypto.passphrase.seal` (80 bytes) when ``kdf`` is set, or in the clear
(64 bytes, development only) when ``kdf`` and ``nonce`` are null. An export is the same map
in ASCII armor, and is always sealed.

>>> from ipfs_share.crypto.passphrase import KdfParams
>>> keys = IdentityKeys.generate()
>>> data = KeyFile.create("alice", keys, created=0, passphrase=b"pw",
...                       params=KdfParams.fastest()).encode()
>>> KeyFile.decode(data).unlock(b"pw").did == keys.did
True
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field, replace
from typing import Any

from ipfs_share.crypto.labels import LABEL_KEYSTORE
from ipfs_share.crypto.passphrase import KDF_ALG, KdfParams, Sealed, seal, unseal
from ipfs_share.crypto.random import Rng
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.crypto.x25519 import EncryptionKey, PublicEncryptionKey
from ipfs_share.errors import FormatError, InvalidInputError, PassphraseRequiredError
from ipfs_share.formats import dagcbor
from ipfs_share.formats.signed import did_key, parse_did_key

__all__ = ["ARMOR_BEGIN", "ARMOR_END", "IdentityKeys", "KeyFile", "check_name"]

MAX_KEY_FILE = 4096
ARMOR_BEGIN = "-----BEGIN IPFS-SHARE IDENTITY-----"
ARMOR_END = "-----END IPFS-SHARE IDENTITY-----"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_KEYS = {"v", "name", "did", "enc", "created", "kdf", "nonce", "secret"}


def check_name(name: str) -> str:
    """A local name: 1-64 of letters, digits, '.', '_', '-', starting with a letter or digit,
    and not something that reads as a did or an IPNS name.

    >>> check_name("alice")
    'alice'
    >>> check_name("did:key:z6Mk")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ipfs_share.errors.InvalidInputError: expected a name of 1-64 letters, ... found 'did:key:z6Mk'
    """
    if not isinstance(name, str) or not _NAME.match(name) or name.startswith(("k51", "did")):
        raise InvalidInputError(
            f"expected a name of 1-64 letters, digits, '.', '_' or '-', found {name!r:.80}",
            hint="names like alice, bob-laptop or app.server-1 work; they must not start "
            "with 'did' or 'k51'",
        )
    return name


@dataclass(frozen=True, slots=True)
class IdentityKeys:
    """An identity's two secret keys. Its repr shows the did only."""

    signing: SigningKey
    encryption: EncryptionKey

    @classmethod
    def generate(cls, rng: Rng | None = None) -> IdentityKeys:
        return cls(SigningKey.generate(rng), EncryptionKey.generate(rng))

    @property
    def did(self) -> str:
        return did_key(self.signing.public_key)

    @property
    def enc_public(self) -> PublicEncryptionKey:
        return self.encryption.public_key

    def __repr__(self) -> str:
        return f"IdentityKeys(did={self.did!r})"


def _aad(did: str, enc: bytes) -> bytes:
    return LABEL_KEYSTORE + dagcbor.encode({"did": did, "enc": enc})


@dataclass(frozen=True, slots=True)
class KeyFile:
    name: str
    did: str
    enc: PublicEncryptionKey
    created: int
    sealed: Sealed | None
    plain: bytes | None = field(default=None, repr=False)  # only for unencrypted files

    @property
    def encrypted(self) -> bool:
        return self.sealed is not None

    @classmethod
    def create(
        cls,
        name: str,
        keys: IdentityKeys,
        *,
        created: int,
        passphrase: bytes | None,
        params: KdfParams | None = None,
        rng: Rng | None = None,
    ) -> KeyFile:
        """Seal ``keys`` under ``passphrase``; ``None`` writes them in the clear (dev only)."""
        check_name(name)
        secret = keys.signing.seed_bytes() + keys.encryption.secret_bytes()
        enc = keys.enc_public
        if passphrase is None:
            return cls(name, keys.did, enc, created, None, secret)
        sealed = seal(secret, passphrase, aad=_aad(keys.did, bytes(enc)), params=params, rng=rng)
        return cls(name, keys.did, enc, created, sealed)

    def renamed(self, name: str) -> KeyFile:
        return replace(self, name=check_name(name))

    def unlock(self, passphrase: bytes | None) -> IdentityKeys:
        if self.sealed is not None:
            if passphrase is None:
                raise PassphraseRequiredError(f"the key of {self.name!r} is sealed")
            secret = unseal(self.sealed, passphrase, aad=_aad(self.did, bytes(self.enc)))
        else:
            assert self.plain is not None
            secret = self.plain
        keys = IdentityKeys(SigningKey.from_seed(secret[:32]), EncryptionKey(secret[32:]))
        # An unsealed file has no tag: check the secrets are the ones the file names.
        if keys.did != self.did or keys.enc_public != self.enc:
            raise FormatError(f"the key file of {self.name!r} holds keys of another identity")
        return keys

    # -- bytes ----------------------------------------------------------------------------
    def encode(self) -> bytes:
        kdf: dict[str, Any] | None = None
        nonce: bytes | None = None
        if self.sealed is not None:
            p = self.sealed.params
            kdf = {"alg": KDF_ALG, "ops": p.ops, "mem": p.mem, "salt": self.sealed.salt}
            nonce = self.sealed.nonce
            secret = self.sealed.ciphertext
        else:
            assert self.plain is not None
            secret = self.plain
        return dagcbor.encode(
            {
                "v": 1,
                "name": self.name,
                "did": self.did,
                "enc": bytes(self.enc),
                "created": self.created,
                "kdf": kdf,
                "nonce": nonce,
                "secret": secret,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> KeyFile:
        if len(data) > MAX_KEY_FILE:
            raise FormatError(
                f"expected a key file of at most {MAX_KEY_FILE} bytes, found {len(data)}"
            )
        m = dagcbor.decode(data, max_size=MAX_KEY_FILE)
        if not isinstance(m, dict) or set(m) != _KEYS:
            found = sorted(m) if isinstance(m, dict) else type(m).__name__
            raise FormatError(f"expected a key file map with keys {sorted(_KEYS)}, found {found}")
        if m["v"] != 1:
            raise FormatError(f"expected key file version 1, found {m['v']!r}")
        _typed(m, "name", str)
        _typed(m, "did", str)
        _typed(m, "created", int)
        _typed(m, "secret", bytes)
        enc = _bytes(m, "enc", 32)
        try:
            check_name(m["name"])
        except InvalidInputError as exc:  # inside a file it is malformed data, not bad input
            raise FormatError(f"the key file's name: {exc.message}") from None
        parse_did_key(m["did"])
        if m["kdf"] is None:
            if m["nonce"] is not None or len(m["secret"]) != 64:
                raise FormatError("expected an unsealed key file to hold 64 bytes and no nonce")
            return cls(
                m["name"], m["did"], PublicEncryptionKey(enc), m["created"], None, m["secret"]
            )
        kdf = m["kdf"]
        if not isinstance(kdf, dict) or set(kdf) != {"alg", "ops", "mem", "salt"}:
            raise FormatError("expected kdf to be a map of alg, ops, mem and salt")
        if kdf["alg"] != KDF_ALG:
            raise FormatError(f"expected kdf alg {KDF_ALG!r}, found {kdf['alg']!r:.40}")
        _typed(kdf, "ops", int)
        _typed(kdf, "mem", int)
        nonce = _bytes(m, "nonce", 24)
        salt = _bytes(kdf, "salt", 16)
        if len(m["secret"]) != 80:
            raise FormatError(f"expected 80 sealed secret bytes, found {len(m['secret'])}")
        sealed = Sealed(KdfParams(kdf["ops"], kdf["mem"]), salt, nonce, m["secret"])
        return cls(m["name"], m["did"], PublicEncryptionKey(enc), m["created"], sealed)

    def armored(self) -> str:
        """The export form: ASCII armor around the encoded file; only sealed files export."""
        if self.sealed is None:
            raise PassphraseRequiredError("an identity is only exported sealed under a passphrase")
        body = base64.b64encode(self.encode()).decode()
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        return "\n".join([ARMOR_BEGIN, *lines, ARMOR_END]) + "\n"

    @classmethod
    def from_armored(cls, text: str) -> KeyFile:
        lines = [line.strip() for line in text.strip().splitlines()]
        if len(lines) < 3 or lines[0] != ARMOR_BEGIN or lines[-1] != ARMOR_END:
            raise FormatError(
                f"expected an exported identity between {ARMOR_BEGIN} and {ARMOR_END}",
                hint="pass the whole text an export of the identity wrote, from BEGIN to END",
            )
        try:
            data = base64.b64decode("".join(lines[1:-1]), validate=True)
        except ValueError as exc:
            raise FormatError("expected base64 inside the identity armor") from exc
        key_file = cls.decode(data)
        if key_file.sealed is None:
            raise FormatError("expected a sealed identity export, found an unsealed one")
        return key_file


def _typed(m: dict[str, Any], key: str, kind: type) -> None:
    if type(m[key]) is not kind or (kind is int and m[key] < 0):
        raise FormatError(f"expected {key} to be {kind.__name__}, found {type(m[key]).__name__}")


def _bytes(m: dict[str, Any], key: str, size: int) -> bytes:
    value = m[key]
    if type(value) is not bytes or len(value) != size:
        raise FormatError(f"expected {key} to be {size} bytes, found {type(value).__name__}")
    return value
