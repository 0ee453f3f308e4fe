"""Remote pins: pinning services registered in the home, and pin requests sent to them.

A service is a name, the base URL of its Pinning Service API and an access token, kept in
``<home>/pin-services/<name>.json`` (0600, written atomically; the token is in no other
file, no repr and no message). :meth:`RemotePins.pin` asks a service to pin a CID with the
storage's own multiaddrs as origins (so the service can fetch the ciphertext from us),
connects the storage to the service's delegates where it can, and waits, bounded, until
the service reports the pin ``pinned`` or ``failed``.

What a remote pin does not do: the service stores ciphertext only (file name, type and
size travel encrypted), and removing a file here does not unpin it there
(``ipfs-share pin remote rm SERVICE CID`` does).

>>> import tempfile
>>> from pathlib import Path
>>> pins = RemotePins(Path(tempfile.mkdtemp()), storage=None)
>>> pins.add_service("local", "http://127.0.0.1:9097", AccessToken("t0ken"))
PinService(name='local', url='http://127.0.0.1:9097')
>>> [s.name for s in pins.services()]
['local']
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ipfs_share.errors import InvalidInputError, NodeError, NotFoundError, StoreError
from ipfs_share.local.files import write_atomic
from ipfs_share.storage.base import Storage
from ipfs_share.storage.pinning import (
    STATUSES,
    AccessToken,
    PinningClient,
    RemotePin,
    check_service_url,
)

__all__ = ["PinService", "RemotePins"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_FOLDER = "pin-services"


@dataclass(frozen=True, slots=True)
class PinService:
    """A registered pinning service (its token stays in the file)."""

    name: str
    url: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "url": self.url}


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInputError(
            f"expected a service name of lower-case letters, digits, '.', '_' or '-' "
            f"(at most 64), found {name!r:.70}",
            hint="choose a short name such as 'pinata' or 'local'",
        )
    return name


class RemotePins:
    """The home's pinning services, and pins asked of them for ``storage``'s content."""

    def __init__(
        self,
        home: Path,
        storage: Storage | None,
        *,
        client: Callable[[str, AccessToken], PinningClient] = PinningClient,
    ) -> None:
        self.folder = home / _FOLDER
        self.storage = storage
        self._client = client

    def __repr__(self) -> str:
        return f"RemotePins({str(self.folder)!r})"

    # -- the registry -----------------------------------------------------------------------

    def _path(self, name: str) -> Path:
        return self.folder / f"{_check_name(name)}.json"

    def add_service(
        self, name: str, url: str, token: AccessToken, *, replace: bool = False
    ) -> PinService:
        path = self._path(name)
        url = check_service_url(url)
        if path.exists() and not replace:
            raise InvalidInputError(
                f"a pinning service named {name!r} is already registered",
                hint=f"remove it first ('ipfs-share pin remote rm {name}') or pass --replace",
            )
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        doc = {"version": 1, "name": name, "url": url, "token": token.reveal()}
        write_atomic(path, (json.dumps(doc, sort_keys=True) + "\n").encode(), mode=0o600)
        return PinService(name, url)

    def _read(self, name: str) -> tuple[PinService, AccessToken]:
        path = self._path(name)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFoundError(
                f"no pinning service named {name!r} is registered",
                hint="see 'ipfs-share pin remote ls'; register one with "
                "'ipfs-share pin remote add NAME URL --token-file FILE'",
            ) from None
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read the pinning service file {path}: {exc}") from exc
        if (
            not isinstance(doc, dict)
            or doc.get("version") != 1
            or doc.get("name") != name
            or not isinstance(doc.get("url"), str)
            or not isinstance(doc.get("token"), str)
        ):
            raise StoreError(
                f"expected a version 1 pinning service file for {name!r}, found {path} is not one",
                hint=f"register the service again with 'ipfs-share pin remote add {name} "
                "URL --token-file FILE --replace'",
            )
        return PinService(name, doc["url"]), AccessToken(doc["token"])

    def service(self, name: str) -> PinService:
        return self._read(name)[0]

    def services(self) -> list[PinService]:
        if not self.folder.is_dir():
            return []
        names = sorted(p.stem for p in self.folder.glob("*.json") if _NAME.match(p.stem))
        return [self.service(n) for n in names]

    def remove_service(self, name: str) -> PinService:
        found = self.service(name)
        self._path(name).unlink(missing_ok=True)
        return found

    def client(self, name: str) -> PinningClient:
        service, token = self._read(name)
        return self._client(service.url, token)

    # -- pins -------------------------------------------------------------------------------

    async def origins(self) -> list[str]:
        """Our storage's multiaddrs, each ending in /p2p/<peer id>: where to fetch from."""
        if self.storage is None:
            return []
        info = await self.storage.node_info()
        found = []
        for addr in info.addresses:
            if "/p2p-circuit" in addr:
                continue
            found.append(addr if "/p2p/" in addr else f"{addr}/p2p/{info.peer_id}")
        return list(dict.fromkeys(found))

    async def pin(
        self, service: str, cid: str, *, name: str | None = None, timeout: float = 600.0
    ) -> RemotePin:
        """Ask ``service`` to pin ``cid`` and wait until it is pinned (at most ``timeout`` s).

        Raises :class:`~ipfs_share.errors.RemotePinFailedError` if the service reports
        ``failed`` or has not pinned it in time (the request is left with the service,
        which may still finish), and :class:`~ipfs_share.errors.PinServiceAuthError` if it
        refuses the token."""
        origins = await self.origins()
        if self.storage is not None and not origins:
            raise InvalidInputError(
                "expected a storage a pinning service can fetch from, found one with no "
                f"network address ({self.storage.backend})",
                hint="remote pins need a Kubo node or a cluster (--api or --cluster)",
            )
        async with self.client(service) as client:
            request = await client.add(cid, name=name, origins=origins)
            await self._connect(request.delegates)
            return await client.wait(request.requestid, timeout=timeout)

    async def _connect(self, delegates: tuple[str, ...]) -> None:
        """Dial the service's delegates, as the spec asks, where the storage can (a
        failure only means the service has to find us through the origins)."""
        connect = getattr(self.storage, "swarm_connect", None)
        if connect is None:
            return
        for addr in delegates[:8]:
            try:
                await connect(addr)
            except NodeError:
                continue

    async def pins(self, service: str, *, statuses: tuple[str, ...] = STATUSES) -> list[RemotePin]:
        async with self.client(service) as client:
            return await client.list(statuses=statuses)

    async def unpin(self, service: str, cid: str) -> int:
        """Withdraw every pin request for ``cid`` at ``service``; how many there were."""
        async with self.client(service) as client:
            found = await client.list(cids=[cid])
            for pin in found:
                await client.remove(pin.requestid)
            return len(found)
