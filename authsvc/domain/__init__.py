"""The domain: what authsvc decides, grouped by what it is about.

``sessions`` (sign-in, refresh, sign-out), ``tokens`` (issuing and verifying
access tokens, the signing keys), ``accounts`` (administration, sign-up,
verification, passwords and the codes they send), ``factors`` (second factors and
sign-in with them), ``throttling`` and ``delivery`` (the outbox); beside them the
small pieces every room uses: ``caller`` (who is asking), ``keycrypto`` (keys and
derived keys) and ``retention`` (forgetting what can no longer matter).

Knows nothing of gRPC and writes no SQL: it calls ``authsvc.store`` for rows
and raises ``authsvc.errors`` for refusals.
"""
