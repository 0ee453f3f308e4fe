"""Errors as HTTP: one table from error codes to statuses, the body every error gets.

As with the command line's exit codes, an error whose code is not in the table takes the
status of its nearest listed ancestor class, so a new subclass lands in its family.

>>> from ipfs_share.errors import CidInvalidError, IdentityLockedError, ShareRevokedError
>>> status_for(CidInvalidError("x")), status_for(IdentityLockedError("x"))
(400, 423)
>>> status_for(ShareRevokedError("x"))
410
"""

from __future__ import annotations

from typing import Any

from ipfs_share.errors import IpfsShareError

__all__ = ["HTTP_STATUS", "error_body", "status_for"]

HTTP_STATUS: dict[str, int] = {
    "ipfs_share_error": 500,
    "share_error": 500,
    "invalid_input": 400,
    "passphrase_invalid": 403,
    "identity_locked": 423,
    "identity_exists": 409,
    "node_unreachable": 502,
    "node_error": 502,
    "not_found": 404,
    "identity_not_found": 404,
    "integrity_error": 502,
    "signature_invalid": 422,
    "chain_invalid": 422,
    "decryption_failed": 422,
    "node_management_failed": 500,
    "store_error": 500,
    "agent_error": 500,
    "agent_running": 409,
    "agent_not_running": 503,
    "recipient_not_authorized": 403,
    "key_unwrap_failed": 403,
    "policy_provider_required": 403,
    "policy_denied": 403,
    "capability_required": 403,
    "capability_invalid": 403,
    "share_expired": 410,
    "share_revoked": 410,
    "revocation_unavailable": 503,
    "download_not_allowed": 403,
}


def status_for(exc: IpfsShareError) -> int:
    for cls in type(exc).__mro__:
        code = cls.__dict__.get("code")
        if isinstance(code, str) and code in HTTP_STATUS:
            return HTTP_STATUS[code]
    return 500


def error_body(code: str, message: str, hint: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "hint": hint}}
