"""The agent's HTTP face: an aiohttp app over an :class:`~ipfs_share.agent.core.Agent`.

Thin, like the command line: parse, call the agent or the facade, stream, map errors to
JSON ``{"error": {"code", "message", "hint"}}`` with a status from one table
(:mod:`.errors`). Served on ``<home>/agent.sock`` (:mod:`.server`); the routes the command
line needs are in :mod:`.app`.
"""
