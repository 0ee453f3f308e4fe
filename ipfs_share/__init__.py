"""ipfs-share: end-to-end encrypted sharing on IPFS, with no server but Kubo."""

__version__ = "0.1.0"

__all__ = ["__version__"]
