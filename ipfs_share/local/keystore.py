"""The keystore: one 0600 key file per identity in ``<home>/identities/``.

A file is named by its identity's did (``<z6Mk...>.key``), so renaming an identity rewrites
one file in place, atomically, and a crash can never leave an identity under two names.
Files are never edited: each change writes a whole new file and renames it over the old,
so a file whose inode, size and modification time are unchanged holds the same bytes: a
file decoded once is kept in memory under those (public parts and sealed keys only, as on
disk) and read again only when they change. Likewise the folder's listing is kept under
the folder's inode and modification time (every add, rename and delete changes them),
trusted only once that time is :data:`SETTLED_NS` old: two changes within one tick of
the file system's clock may leave the same time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ipfs_share.errors import FormatError, IdentityExistsError, IdentityNotFoundError, StoreError
from ipfs_share.formats.keystore import KeyFile, check_name
from ipfs_share.local.files import write_atomic
from ipfs_share.local.home import prepare_home

__all__ = ["Keystore"]

SETTLED_NS = 2_000_000_000  # a folder's listing is kept once it is 2 s unchanged


class Keystore:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.dir = home / "identities"
        # path -> ((inode, size, mtime_ns), the file decoded); one entry per identity here
        self._decoded: dict[Path, tuple[tuple[int, int, int], KeyFile]] = {}
        # the folder's (inode, mtime_ns) and the key files' names in it, once settled
        self._listed: tuple[tuple[int, int], tuple[str, ...]] | None = None

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
            names = self._names()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot list the key files in {self.dir}: {exc.strerror}") from exc
        files = [self._read(self.dir / name) for name in names]
        return sorted(files, key=lambda f: f.name)

    def _names(self) -> tuple[str, ...]:
        """The key files' names, listed again only when the folder changed."""
        st = os.stat(self.dir)
        stamp = (st.st_ino, st.st_mtime_ns)
        if self._listed is not None and self._listed[0] == stamp:
            return self._listed[1]
        names = tuple(sorted(e.name for e in os.scandir(self.dir) if e.name.endswith(".key")))
        settled = time.time_ns() - st.st_mtime_ns >= SETTLED_NS
        self._listed = (stamp, names) if settled else None
        return names

    def _read(self, path: Path) -> KeyFile:
        found = self._read_if_there(path)
        if found is None:
            raise StoreError(f"cannot read key file {path}: no such file")
        return found

    def _read_if_there(self, path: Path) -> KeyFile | None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
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
            return self._read_if_there(self._path(name_or_did))
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
