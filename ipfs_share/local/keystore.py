"""The keystore: one 0600 key file per identity in ``<home>/identities/``.

A file is named by its identity's did (``<z6Mk...>.key``), so renaming an identity rewrites
one file in place, atomically, and a crash can never leave an identity under two names.
Files are never edited: each change writes a whole new file and renames it over the old,
so a file whose inode, size and modification time are unchanged holds the same bytes: a
file decoded once is kept in memory under those (public parts and sealed keys only, as on
disk) and read again only when they change.
"""

from __future__ import annotations

import os
from pathlib import Path

from ipfs_share.errors import FormatError, IdentityExistsError, IdentityNotFoundError, StoreError
from ipfs_share.formats.keystore import KeyFile, check_name
from ipfs_share.local.files import write_atomic
from ipfs_share.local.home import prepare_home

__all__ = ["Keystore"]


class Keystore:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.dir = home / "identities"
        # path -> ((inode, size, mtime_ns), the file decoded); one entry per identity here
        self._decoded: dict[Path, tuple[tuple[int, int, int], KeyFile]] = {}

    def __repr__(self) -> str:
        return f"Keystore({str(self.dir)!r})"

    def _ensure_dir(self) -> None:
        prepare_home(self.home)
        prepare_home(self.dir)

    def _path(self, did: str) -> Path:
        return self.dir / f"{did.removeprefix('did:key:')}.key"

    def list(self) -> list[KeyFile]:
        """Every identity, sorted by name. A damaged file is an error, not a silent skip."""
        try:
            names = sorted(e.name for e in os.scandir(self.dir) if e.name.endswith(".key"))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot list the key files in {self.dir}: {exc.strerror}") from exc
        files = [self._read(self.dir / name) for name in names]
        return sorted(files, key=lambda f: f.name)

    def _read(self, path: Path) -> KeyFile:
        try:
            st = path.stat()
        except OSError as exc:
            raise StoreError(f"cannot read key file {path}: {exc.strerror}") from exc
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        held = self._decoded.get(path)
        if held is not None and held[0] == stamp:
            return held[1]
        key_file = self._decode(path)
        self._decoded[path] = (stamp, key_file)
        return key_file

    def _decode(self, path: Path) -> KeyFile:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StoreError(f"cannot read key file {path}: {exc.strerror}") from exc
        try:
            key_file = KeyFile.decode(data)
        except FormatError as exc:
            raise FormatError(
                f"the key file {path} is damaged: {exc.message}",
                hint="restore it from an export of the identity (import it), or move it away",
            ) from exc
        if self._path(key_file.did) != path:
            raise FormatError(f"the key file {path} holds the key of {key_file.did}")
        return key_file

    def find(self, name_or_did: str) -> KeyFile | None:
        if name_or_did.startswith("did:"):
            path = self._path(name_or_did)
            return self._read(path) if path.exists() else None
        for key_file in self.list():
            if key_file.name == name_or_did:
                return key_file
        return None

    def get(self, name_or_did: str) -> KeyFile:
        found = self.find(name_or_did)
        if found is None:
            raise IdentityNotFoundError(f"no local identity named {name_or_did!r:.80}")
        return found

    def add(self, key_file: KeyFile) -> None:
        """Store a new identity; refuse a taken name or an identity already here."""
        self._ensure_dir()
        if self._path(key_file.did).exists():
            held = self._read(self._path(key_file.did)).name
            raise IdentityExistsError(f"the identity {key_file.did} is already here as {held!r}")
        if self.find(key_file.name) is not None:
            raise IdentityExistsError(f"an identity named {key_file.name!r} already exists")
        write_atomic(self._path(key_file.did), key_file.encode())

    def rename(self, old: str, new: str) -> KeyFile:
        check_name(new)
        key_file = self.get(old)
        if new != key_file.name and self.find(new) is not None:
            raise IdentityExistsError(f"an identity named {new!r} already exists")
        renamed = key_file.renamed(new)
        write_atomic(self._path(key_file.did), renamed.encode())
        return renamed

    def delete(self, name_or_did: str) -> KeyFile:
        key_file = self.get(name_or_did)
        try:
            os.unlink(self._path(key_file.did))
            self._decoded.pop(self._path(key_file.did), None)
        except OSError as exc:
            raise StoreError(f"cannot delete the key of {key_file.name!r}: {exc.strerror}") from exc
        return key_file
