"""Use cases: sign-in, refresh, revocation, accounts, keys, throttling, passwords.

Knows nothing of gRPC and writes no SQL: it calls ``authsvc.store`` for rows
and raises ``authsvc.errors`` for refusals.
"""
