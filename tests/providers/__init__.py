"""Real identity providers for the federation tests, started by fixtures.

- zitadel.py: the example OpenID Provider of github.com/zitadel/oidc/v3 (a Go
  program under oidc-op/, built into .tools/bin), a correct OIDC provider with a
  login form (``OIDCProvider.sign_in`` fills it without a browser);
- github.py: an OAuth 2.0 provider that is not OIDC, in GitHub's shape;
- rogue.py: an OIDC provider in Python whose answers a test bends (alg none,
  wrong aud, expired, unknown key, another iss, a held token endpoint, a rotated
  key, private_key_jwt clients, a provider that goes down): the provider of the
  gRPC and HTTP-edge federation tests;
- fixtures.py: the pytest fixtures (imported by tests/conftest.py);
- http.py / serving.py: the client and server plumbing they share.
"""
