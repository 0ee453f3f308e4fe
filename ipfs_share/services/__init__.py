"""Orchestration over storage, formats and local state; no aiohttp, no nacl."""
