"""Policy providers: code a capsule names, which must agree before it is opened.

A capsule's ``policy`` is ``{"provider": NAME, "params": {...}}``. The opener looks NAME
up among the providers it has configured: those installed as entry points in the group
``ipfs_share.policy_providers`` (any package can add one) and those passed to
:class:`~ipfs_share.client.Mesh` directly. A capsule that names a provider the opener does
not have fails with ``policy_provider_required``; a provider that refuses,
``policy_denied``. Like every check in a capsule, this binds honest clients only.

A provider is any object with a ``name`` and ``check(request) -> Decision``::

    class OfficeHours:
        name = "example/office-hours"
        def check(self, request: PolicyRequest) -> Decision:
            hour = time.gmtime(request.now).tm_hour
            return Decision(9 <= hour < 17, "outside office hours")

>>> p = TimeWindowProvider()
>>> p.check(PolicyRequest("bafy...", "did:key:a", "did:key:b", 99, {"expires": 100}))
Decision(allowed=True, reason='')
>>> p.check(PolicyRequest("bafy...", "did:key:a", "did:key:b", 100, {"expires": 100}))
Decision(allowed=False, reason='the window closed at 1970-01-01T00:01:40Z')
>>> p.check(PolicyRequest("bafy...", "did:key:a", "did:key:b", 50, {"allow": ["did:key:c"]}))
Decision(allowed=False, reason='did:key:b is not on the allow-list')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ipfs_share.errors import InvalidInputError, PolicyDeniedError, PolicyProviderRequiredError
from ipfs_share.times import iso

__all__ = [
    "ENTRY_POINT_GROUP",
    "Decision",
    "PolicyProvider",
    "PolicyRegistry",
    "PolicyRequest",
    "TimeWindowProvider",
]

ENTRY_POINT_GROUP = "ipfs_share.policy_providers"


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    capsule: str  # the capsule's CID
    issuer: str  # did of who shared
    opener: str  # did of who opens
    now: int  # Unix seconds
    params: Mapping[str, Any]  # the capsule's policy params (signed by the issuer)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""


@runtime_checkable
class PolicyProvider(Protocol):
    name: str

    def check(self, request: PolicyRequest) -> Decision: ...


class TimeWindowProvider:
    """``ipfs-share/window`` (docs/spec/capsule.md section 4): open only within a time
    window and, optionally, only by dids on an allow-list. Params (all optional):
    ``not_before`` (Unix seconds, inclusive: the first second an open is allowed),
    ``expires`` (Unix seconds, exclusive: the first second an open is refused, the rule of
    a capsule's ``expires``) and ``allow`` (a list of dids). Any other key, or a value of
    the wrong type, refuses every open: a window this provider cannot read is closed."""

    name = "ipfs-share/window"

    def check(self, request: PolicyRequest) -> Decision:
        p = request.params
        unknown = set(p) - {"not_before", "expires", "allow"}
        if unknown:
            return Decision(False, f"unknown window params {sorted(unknown)}")
        nb, exp, allow = p.get("not_before"), p.get("expires"), p.get("allow")
        for key, bound in (("not_before", nb), ("expires", exp)):
            if bound is not None and type(bound) is not int:
                return Decision(False, f"the window's {key} is not a time in seconds")
        if nb is not None and request.now < nb:
            return Decision(False, f"the window opens at {iso(nb)}")
        if exp is not None and request.now >= exp:
            return Decision(False, f"the window closed at {iso(exp)}")
        if allow is not None:
            if type(allow) is not list or not all(type(d) is str for d in allow):
                return Decision(False, "the allow-list is not a list of dids")
            if request.opener not in allow:
                return Decision(False, f"{request.opener} is not on the allow-list")
        return Decision(True)

    @staticmethod
    def params(
        *, not_before: int | None = None, expires: int | None = None, allow: Iterable[str] = ()
    ) -> dict[str, Any]:
        """The params for a capsule, checked here so a bad policy fails at share time.

        >>> TimeWindowProvider.params(not_before=10, expires=20)
        {'not_before': 10, 'expires': 20}
        """
        out: dict[str, Any] = {}
        if not_before is not None:
            out["not_before"] = int(not_before)
        if expires is not None:
            out["expires"] = int(expires)
        if not_before is not None and expires is not None and not expires > not_before:
            raise InvalidInputError(
                f"expected the window to close after it opens ({iso(not_before)}), "
                f"found {iso(expires)}"
            )
        allowed = list(allow)
        if allowed:
            out["allow"] = allowed
        return out


class PolicyRegistry:
    """The providers an opener has: entry points, plus any given explicitly (which win
    over an entry point of the same name). The entry points are looked up when a
    provider is first needed, not before: most capsules name none, and scanning the
    installed packages costs a command more than the rest of its start-up."""

    def __init__(self, extra: Iterable[PolicyProvider] = (), *, load_entry_points: bool = True):
        self._extra = tuple(extra)
        self._load_entry_points = load_entry_points
        self._found: dict[str, PolicyProvider] | None = None

    @property
    def _providers(self) -> dict[str, PolicyProvider]:
        if self._found is None:
            found: dict[str, PolicyProvider] = {}
            if self._load_entry_points:
                from importlib.metadata import entry_points

                for ep in entry_points(group=ENTRY_POINT_GROUP):
                    provider = ep.load()()
                    found[provider.name] = provider
            for provider in self._extra:
                found[provider.name] = provider
            self._found = found
        return self._found

    def names(self) -> list[str]:
        return sorted(self._providers)

    def check(self, provider_name: str, request: PolicyRequest) -> None:
        provider = self._providers.get(provider_name)
        if provider is None:
            raise PolicyProviderRequiredError(
                f"the share needs the policy provider {provider_name!r}, which is not configured",
                hint=f"install the package that provides {provider_name!r} (entry point group "
                f"{ENTRY_POINT_GROUP}); configured here: {', '.join(self.names()) or 'none'}",
            )
        decision = provider.check(request)
        if not decision.allowed:
            raise PolicyDeniedError(
                f"the policy {provider_name!r} refused: {decision.reason or 'no reason given'}"
            )
