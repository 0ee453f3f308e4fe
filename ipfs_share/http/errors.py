"""Errors as HTTP: the status of each error code (from the one table in
:mod:`ipfs_share.status`, which gives the command line its exit codes too) and the body
every error gets.

>>> from ipfs_share.errors import CidInvalidError, IdentityLockedError, ShareRevokedError
>>> status_for(CidInvalidError("x")), status_for(IdentityLockedError("x"))
(400, 423)
>>> status_for(ShareRevokedError("x"))
410
>>> error_body("not_found", "no such route", "")
{'error': {'code': 'not_found', 'message': 'no such route', 'hint': ''}}
"""

from __future__ import annotations

from typing import Any

from ipfs_share.status import HTTP_STATUS, http_status_for

__all__ = ["HTTP_STATUS", "error_body", "status_for"]

status_for = http_status_for


def error_body(code: str, message: str, hint: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "hint": hint}}
