"""Adapters from other systems' exports to authsvc's import format (JSON Lines).

Each module reads one peer's real export and yields dicts of the format that
``authsvc.domain.accounts.imported`` checks (re-exported by ``format``); the
``authsvc users import`` command and the ImportUsers RPC take the lines.
"""
