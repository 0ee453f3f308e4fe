"""Keychain files: a file key sealed under a keychain key (docs/spec/keychain.md section 8).

``put --keychain FP`` stores the envelope as usual and this signed object, which seals
the file key under the owner's most recent key of the keychain. Any member holding that
key opens the file, also one who joined after the put (by being shared the key). The
sealed message's ``ad`` is ``LABEL_KEYCHAIN_FILE_KEY || binary content CID``, so the file
key cannot be pointed at other bytes.

>>> from ipfs_share.crypto.keychain import KeychainKey, key_fingerprint
>>> from ipfs_share.crypto.signing import SigningKey
>>> from ipfs_share.crypto.stream import FileKey
>>> owner = SigningKey.from_seed(bytes(32))
>>> key, file_key = KeychainKey(b"\\x01" * 32), FileKey(b"\\x02" * 32)
>>> content = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
>>> kc = "bafyreifqwkmiw256ojf2zws6tzjeonw6bpd5vza4i22ccpcq4hjv2ts7cm"
>>> made = make_keychain_file(owner, content=content, keychain=kc, key=key,
...                           file_key=file_key, created=1_800_000_000)
>>> opened = decode_keychain_file(made.data)
>>> opened.key == key_fingerprint(key), open_file_key(opened, key) == file_key
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from ipfs_share.crypto.keychain import (
    HEADER_SIZE,
    TAG_SIZE,
    KeychainKey,
    key_fingerprint,
    open_message,
    seal_message,
    sealed_fingerprint,
)
from ipfs_share.crypto.labels import LABEL_KEYCHAIN_FILE, LABEL_KEYCHAIN_FILE_KEY
from ipfs_share.crypto.random import Rng
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.crypto.stream import FILE_KEY_SIZE, FileKey
from ipfs_share.errors import DecryptionError, FormatError, KeyUnwrapFailedError
from ipfs_share.formats import dagcbor
from ipfs_share.formats.cid import DAG_PB, RAW
from ipfs_share.formats.dagcbor import Link
from ipfs_share.formats.signed import (
    Schema,
    block_from_bytes,
    decode_signed,
    did,
    did_key,
    link,
    sign_object,
    uint,
)

__all__ = [
    "KEYCHAIN_FILE",
    "MAX_KEYCHAIN_FILE_SIZE",
    "KeychainFile",
    "decode_keychain_file",
    "looks_like_keychain_file",
    "make_keychain_file",
    "open_file_key",
]

MAX_KEYCHAIN_FILE_SIZE: Final = 1024
_SEALED_SIZE: Final = HEADER_SIZE + FILE_KEY_SIZE + TAG_SIZE  # 105


def _content(value: Any, path: str) -> None:
    raw = bytes(value) if type(value) is Link else b""
    if not (len(raw) == 36 and raw[0] == 1 and raw[1] in (RAW, DAG_PB) and raw[2:4] == b"\x12\x20"):
        found = value.cid[:80] if type(value) is Link else type(value).__name__
        raise FormatError(f"expected a CIDv1 (raw or dag-pb, sha2-256) at {path}, found {found}")


def _sealed(value: Any, path: str) -> None:
    if type(value) is not bytes or len(value) != _SEALED_SIZE:
        found = f"{len(value)} bytes" if type(value) is bytes else type(value).__name__
        raise FormatError(
            f"expected a {_SEALED_SIZE}-byte sealed file key at {path}, found {found}"
        )
    sealed_fingerprint(value)  # the version


KEYCHAIN_FILE: Final = Schema(
    name="keychain file",
    label=LABEL_KEYCHAIN_FILE,
    fields={"owner": did, "content": _content, "kc": link(), "sealed": _sealed, "created": uint},
    signer="owner",
    max_size=MAX_KEYCHAIN_FILE_SIZE,
)


@dataclass(frozen=True, slots=True)
class KeychainFile:
    """A decoded keychain file whose signature verified. ``cid`` is what members open."""

    owner: str
    content: Link
    keychain: str
    sealed: bytes = field(repr=False)
    created: int
    cid: str
    data: bytes = field(repr=False)

    @property
    def key(self) -> bytes:
        """The fingerprint of the keychain key the file key is sealed under."""
        return sealed_fingerprint(self.sealed)


def _ad(content: Link) -> bytes:
    return LABEL_KEYCHAIN_FILE_KEY + bytes(content)


def make_keychain_file(
    owner: SigningKey,
    *,
    content: str | Link,
    keychain: str,
    key: KeychainKey,
    file_key: FileKey,
    created: int,
    rng: Rng | None = None,
) -> KeychainFile:
    content_link = content if isinstance(content, Link) else Link(content)
    sealed = seal_message(
        key, key_fingerprint(key), file_key.secret_bytes(), _ad(content_link), rng
    )
    fields = {
        "owner": did_key(owner.public_key),
        "content": content_link,
        "kc": Link(keychain),
        "sealed": sealed,
        "created": created,
    }
    return decode_keychain_file(sign_object(KEYCHAIN_FILE, fields, owner).data)


def decode_keychain_file(data: bytes) -> KeychainFile:
    """Decode and verify (size, strict dag-cbor, fields, then the owner's signature)."""
    fields = decode_signed(KEYCHAIN_FILE, data)
    block = block_from_bytes(data)
    return KeychainFile(
        owner=fields["owner"],
        content=fields["content"],
        keychain=fields["kc"].cid,
        sealed=fields["sealed"],
        created=fields["created"],
        cid=block.cid,
        data=block.data,
    )


def looks_like_keychain_file(data: bytes) -> bool:
    """Does ``data`` have a keychain file's shape (strict dag-cbor, its key set)? Says
    which decoder to use; :func:`decode_keychain_file` still checks everything."""
    try:
        value = dagcbor.decode(data, max_size=MAX_KEYCHAIN_FILE_SIZE)
    except FormatError:
        return False
    return type(value) is dict and value.keys() == KEYCHAIN_FILE.keys


def open_file_key(file: KeychainFile, key: KeychainKey) -> FileKey:
    """The file key, with the keychain key the file names; :class:`KeyUnwrapFailedError` if
    it does not open (another key, or a file key sealed for other content)."""
    try:
        return FileKey(open_message(key, file.sealed, _ad(file.content)))
    except DecryptionError as exc:
        raise KeyUnwrapFailedError(
            "expected the file key sealed under this keychain key, found one that does not open",
            hint="the keychain file is damaged or was made for other content",
        ) from exc
