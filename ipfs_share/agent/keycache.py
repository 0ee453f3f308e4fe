"""Unlocked keys with deadlines, in the agent's memory only.

The keys themselves stay where every other part of the library finds them, in the
:class:`~ipfs_share.services.identities.IdentityService` of the agent's Mesh; this
module decides how long: until a deadline (``ipfs-share unlock --for 8h``), an explicit
``lock``, or the agent's end. Keys are never written anywhere and never leave the
process: the agent performs operations with them. The Mesh's passphrase source is
:func:`refuse_prompt`: the agent never asks, so a locked identity fails with
``identity_locked`` (and the command line then unlocks by itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ipfs_share.errors import IdentityLockedError
from ipfs_share.services.identities import IdentityService, PassphraseSource

__all__ = ["KeyCache", "Unlocked", "refuse_prompt"]

log = logging.getLogger("ipfs_share.agent")


def refuse_prompt(prompt: str) -> bytes:
    """The agent's passphrase source: never asks; a locked identity is an error."""
    raise IdentityLockedError(
        f"{prompt}: the identity is locked in the agent (it never prompts)",
        hint="unlock it with 'ipfs-share unlock --as NAME', or run the command without "
        "the agent (IPFS_SHARE_NO_AGENT=1), which asks for the passphrase itself",
    )


@dataclass(frozen=True, slots=True)
class Unlocked:
    name: str
    did: str
    until: float | None  # Unix seconds; None: until the agent stops
    sealed: bool  # False: the key file is not passphrase-sealed (always unlocked)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "did": self.did,
            "until": None if self.until is None else int(self.until),
            "sealed": self.sealed,
        }


class KeyCache:
    """Which identities are unlocked in the agent, and until when."""

    def __init__(
        self,
        identities: IdentityService,
        *,
        now: Callable[[], float] = time.time,
        on_change: Callable[[], None] | None = None,
        on_forget: Callable[[str], None] | None = None,
    ) -> None:
        self._identities = identities
        self._now = now
        self._on_change = on_change
        self._on_forget = on_forget  # drops what was derived from the keys elsewhere
        self._until: dict[str, float | None] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    async def unlock(
        self, name_or_did: str | None, passphrase: bytes | None, seconds: float | None
    ) -> Unlocked:
        """Unlock with ``passphrase`` (checked even if the keys are held) for ``seconds``
        (None: until the agent stops). A wrong passphrase raises ``passphrase_invalid``
        and leaves what was unlocked as it was."""
        identity = self._identities.get(name_or_did)
        keys = await self._identities.unlock(identity.did, passphrase=passphrase)
        did = keys.did
        self._cancel_timer(did)
        if seconds is None or not identity.encrypted:
            self._until[did] = None
        else:
            self._until[did] = self._now() + seconds
            loop = asyncio.get_running_loop()
            self._timers[did] = loop.call_later(seconds, self._expire, did)
        log.info(
            "unlocked %s %s",
            identity.name,
            "until the agent stops" if self._until[did] is None else f"for {seconds:.0f} s",
        )
        self._changed()
        return self._view(did)

    async def unlock_available(self, passphrase: PassphraseSource | None) -> list[Unlocked]:
        """At start: every identity whose key file is not sealed, and, with
        ``passphrase``, every sealed one it opens (until the agent stops). Those it does
        not open stay locked, with a log line; nothing is asked interactively."""
        done: list[Unlocked] = []
        for identity in self._identities.list():
            try:
                secret = None
                if identity.encrypted:
                    if passphrase is None:
                        continue
                    secret = passphrase(f"passphrase for {identity.name}")
                done.append(await self.unlock(identity.did, secret, None))
            except Exception as exc:  # one identity's failure leaves the others
                log.warning("%s stays locked: %s", identity.name, getattr(exc, "message", exc))
        return done

    def lock(self, name_or_did: str | None = None) -> list[str]:
        """Forget the keys of one identity, or (None) of every sealed one; returns the
        dids locked. Unsealed identities cannot be locked (their keys are on disk)."""
        dids = list(self._until) if name_or_did is None else [self._identities.get(name_or_did).did]
        locked = []
        for did in dids:
            view = self._until.get(did, ...)
            if view is ... or not self._sealed(did):
                continue
            self._forget(did)
            locked.append(did)
        if locked:
            self._changed()
        return locked

    def held(self) -> list[Unlocked]:
        return [self._view(did) for did in self._until]

    def is_unlocked(self, did: str) -> bool:
        return did in self._until

    def close(self) -> None:
        for did in list(self._until):
            self._forget(did)

    # -- internals ------------------------------------------------------------------------
    def _expire(self, did: str) -> None:
        self._timers.pop(did, None)
        if did in self._until:
            self._forget(did)
            log.info("the unlock of %s ran out: locked", did)
            self._changed()

    def _forget(self, did: str) -> None:
        self._cancel_timer(did)
        self._until.pop(did, None)
        with contextlib.suppress(Exception):
            self._identities.lock(did)
        if self._on_forget is not None:
            self._on_forget(did)

    def _cancel_timer(self, did: str) -> None:
        timer = self._timers.pop(did, None)
        if timer is not None:
            timer.cancel()

    def _sealed(self, did: str) -> bool:
        return self._identities.get(did).encrypted

    def _view(self, did: str) -> Unlocked:
        identity = self._identities.get(did)
        return Unlocked(identity.name, did, self._until.get(did), identity.encrypted)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()
