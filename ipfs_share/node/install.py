"""Find or install the pinned Kubo (``ipfs``) binary.

ipfs-share runs exactly one Kubo release, :data:`ipfs_share.paths.KUBO_VERSION`
(docs/decisions/0002-kubo-version.md says why). The binary is looked for on ``PATH`` and
then in the cache (``<cache>/kubo/<version>/ipfs``); if neither holds the pinned version,
:func:`install_kubo` builds it with this machine's Go through the packaged
``install-kubo.sh``.

>>> from ipfs_share.node.install import find_kubo, install_kubo, kubo_version
>>> binary = find_kubo() or install_kubo(progress=True)   # doctest: +SKIP
>>> kubo_version(binary)                                   # doctest: +SKIP
'v0.43.0'
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from ipfs_share import paths
from ipfs_share.errors import KuboInstallError, NodeManagementError, NodeVersionError

__all__ = [
    "INSTALL_SCRIPT",
    "cached_kubo_path",
    "find_kubo",
    "install_kubo",
    "kubo_version",
    "normalize_version",
    "run_install_script",
]

# Shipped inside the package so an installed wheel can still build Kubo.
INSTALL_SCRIPT = Path(__file__).with_name("install-kubo.sh")

# `ipfs version --number` only reads its own build info; 10 s covers a cold disk.
_VERSION_TIMEOUT = 10.0


def normalize_version(text: str) -> str:
    """Return a Kubo version in the ``vX.Y.Z`` form the project pins.

    >>> normalize_version("0.43.0\\n"), normalize_version("v0.43.0")
    ('v0.43.0', 'v0.43.0')
    """
    text = text.strip()
    return text if text.startswith("v") else f"v{text}"


def kubo_version(binary: Path | str) -> str:
    """Run ``<binary> version --number`` and return the version as ``vX.Y.Z``.

    Raises :class:`NodeManagementError` if the binary cannot be run and
    :class:`NodeVersionError` if it prints something that is not a version.
    """
    try:
        done = subprocess.run(
            [str(binary), "version", "--number"],
            capture_output=True,
            text=True,
            timeout=_VERSION_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NodeManagementError(
            f"could not run '{binary} version --number': {exc}",
            hint="check the path points at an executable Kubo binary, "
            "or install the pinned one with 'ipfs-share node install'",
        ) from exc
    out = done.stdout.strip()
    # A Kubo version is one short line of digits and dots; anything else is not Kubo.
    if done.returncode != 0 or not out or "\n" in out or not out.lstrip("v")[:1].isdigit():
        raise NodeVersionError(
            f"expected '{binary} version --number' to print a Kubo version, "
            f"found exit code {done.returncode} and output {out[:80]!r}",
        )
    return normalize_version(out)


def _reports_pinned(binary: Path) -> bool:
    try:
        return kubo_version(binary) == paths.KUBO_VERSION
    except (NodeManagementError, NodeVersionError):
        return False


def cached_kubo_path(version: str = paths.KUBO_VERSION) -> Path:
    """Where the install script keeps the binary of ``version``."""
    return paths.cache_dir() / "kubo" / version / "ipfs"


def find_kubo() -> Path | None:
    """Return an ``ipfs`` binary of the pinned version, or None if there is none.

    Looks on ``PATH`` first, then in the cache, the same order as the install script; a
    binary of another version is skipped, not used.
    """
    on_path = shutil.which("ipfs")
    if on_path is not None and _reports_pinned(Path(on_path)):
        return Path(on_path)
    cached = cached_kubo_path()
    if cached.is_file() and os.access(cached, os.X_OK) and _reports_pinned(cached):
        return cached
    return None


def _bash() -> str:
    # The caller's PATH may be minimal (the tests run with one lacking go); bash itself
    # must still be found, so fall back to the standard location.
    return shutil.which("bash") or "/bin/bash"


def _collect(stream: IO[str], into: list[str]) -> None:
    into.extend(stream)


def run_install_script(
    script: Path,
    env: dict[str, str],
    *,
    tag: str,
    progress: bool,
    error: type[NodeManagementError],
) -> Path:
    """Run an install script (``install-kubo.sh``, ``install-cluster.sh``) and return the
    path it prints last on stdout.

    With ``progress`` its stderr lines go to our stderr as they come. The script reports
    failure as ``<tag>: error: ...`` and ``<tag>: hint: ...`` lines; they become the
    message and hint of ``error``."""
    try:
        proc = subprocess.Popen(
            [_bash(), str(script)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
    except OSError as exc:
        raise error(f"could not run the install script {script}: {exc}") from exc

    assert proc.stdout is not None and proc.stderr is not None
    stdout_lines: list[str] = []
    # stdout is read on a thread so neither pipe can fill up and stall the build.
    reader = threading.Thread(target=_collect, args=(proc.stdout, stdout_lines), daemon=True)
    reader.start()
    message: str | None = None
    hint: str | None = None
    for line in proc.stderr:
        if progress:
            sys.stderr.write(line)
            sys.stderr.flush()
        if line.startswith(f"{tag}: error: "):
            message = line.removeprefix(f"{tag}: error: ").strip()
        elif line.startswith(f"{tag}: hint: "):
            hint = line.removeprefix(f"{tag}: hint: ").strip()
    code = proc.wait()
    reader.join()

    if code != 0:
        raise error(
            message or f"the install script {script.name} failed with exit code {code}", hint=hint
        )
    lines = [line.strip() for line in stdout_lines if line.strip()]
    if not lines:
        raise error(f"the install script {script.name} succeeded but printed no path")
    return Path(lines[-1])


def install_kubo(progress: bool = True) -> Path:
    """Install the pinned Kubo into the cache (or find it) and return the binary's path.

    Runs the packaged ``install-kubo.sh``; with ``progress`` its progress lines go to
    stderr as they come. Idempotent: when the binary is already on PATH or in the cache
    this returns in well under a second. A failure raises :class:`KuboInstallError`
    carrying the script's own message and hint (with no Go, the hint names Docker).
    """
    env = dict(os.environ)
    # Pass both explicitly so the script and this module agree on what and where.
    env["KUBO_VERSION"] = paths.KUBO_VERSION
    env["IPFS_SHARE_CACHE"] = str(paths.cache_dir())
    binary = run_install_script(
        INSTALL_SCRIPT, env, tag="install-kubo", progress=progress, error=KuboInstallError
    )
    found = kubo_version(binary)
    if found != paths.KUBO_VERSION:
        raise NodeVersionError(
            f"expected the installed Kubo to be {paths.KUBO_VERSION}, found {found} at {binary}"
        )
    return binary
