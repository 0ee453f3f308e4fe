"""What an error means to a caller: one table from error codes to the command line's exit
codes and the HTTP API's statuses.

Both faces key on the error's stable ``code``. An error whose code is not in the table
takes the row of its nearest listed ancestor class, so a new subclass lands in its
family without touching this table. The command line's ``EXIT_CODES`` and the HTTP
API's ``HTTP_STATUS`` are both read off :data:`TABLE`; the README's two tables are
checked against it by a test.

>>> from ipfs_share.errors import CidInvalidError, IdentityLockedError, ShareRevokedError
>>> [(s.exit, s.http) for s in map(status_of, [CidInvalidError("x"), IdentityLockedError("x")])]
[(3, 400), (3, 423)]
>>> exit_code_for(ShareRevokedError("x")), http_status_for(ShareRevokedError("x"))
(11, 410)
"""

from __future__ import annotations

from typing import NamedTuple

from ipfs_share.errors import IpfsShareError

__all__ = [
    "EXIT_CODES",
    "EXIT_GENERIC",
    "HTTP_STATUS",
    "TABLE",
    "Status",
    "exit_code_for",
    "http_status_for",
    "status_of",
]

EXIT_GENERIC = 1


class Status(NamedTuple):
    """One row: an error code, its exit code and its HTTP status. (A NamedTuple: every
    command loads this table, and dataclasses would cost their start-up.)"""

    code: str
    exit: int
    http: int


def _rows(exit: int, *pairs: tuple[str, int]) -> tuple[Status, ...]:
    return tuple(Status(code, exit, http) for code, http in pairs)


TABLE: tuple[Status, ...] = (
    *_rows(EXIT_GENERIC, ("ipfs_share_error", 500), ("share_error", 500)),
    *_rows(2, ("usage_error", 400)),  # the command line's own: it does not parse
    *_rows(
        3,
        ("invalid_input", 400),
        ("range_not_satisfiable", 416),
        ("passphrase_invalid", 403),
        ("identity_locked", 423),
        ("identity_exists", 409),
    ),
    *_rows(4, ("node_unreachable", 502)),
    *_rows(5, ("node_error", 502), ("node_timeout", 504)),
    *_rows(6, ("not_found", 404), ("identity_not_found", 404), ("keychain_not_found", 404)),
    *_rows(
        7,
        ("integrity_error", 502),
        ("signature_invalid", 422),
        ("chain_invalid", 422),
        ("feed_rollback", 422),
        ("feed_fork", 422),
        ("decryption_failed", 422),
    ),
    *_rows(8, ("node_management_failed", 500)),
    *_rows(9, ("store_error", 500), ("state_missing", 500), ("keychain_conflict", 409)),
    *_rows(
        10,
        ("recipient_not_authorized", 403),
        ("key_unwrap_failed", 403),
        ("policy_provider_required", 403),
        ("policy_denied", 403),
        ("capability_required", 403),
        ("capability_invalid", 403),
        ("permission_denied", 403),
    ),
    *_rows(11, ("share_expired", 410), ("share_revoked", 410), ("share_replaced", 410)),
    *_rows(12, ("revocation_unavailable", 503)),
    *_rows(13, ("download_not_allowed", 403)),
    *_rows(
        14,
        ("agent_error", 500),
        ("agent_running", 409),
        ("agent_not_running", 503),
        ("unauthorized", 401),
    ),
)

EXIT_CODES: dict[str, int] = {s.code: s.exit for s in TABLE}
HTTP_STATUS: dict[str, int] = {s.code: s.http for s in TABLE}
_BY_CODE: dict[str, Status] = {s.code: s for s in TABLE}
_ROOT = _BY_CODE["ipfs_share_error"]


def status_of(exc: IpfsShareError) -> Status:
    """The row for an error: its code's, else its nearest listed ancestor's."""
    for cls in type(exc).__mro__:
        code = cls.__dict__.get("code")
        if isinstance(code, str) and code in _BY_CODE:
            return _BY_CODE[code]
    return _ROOT


def exit_code_for(exc: IpfsShareError) -> int:
    return status_of(exc).exit


def http_status_for(exc: IpfsShareError) -> int:
    return status_of(exc).http
