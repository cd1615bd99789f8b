"""Second factors: the authenticator app and recovery codes (``otp``, with the RFC
6238 arithmetic in ``totp``), passkeys (``passkeys``, with the stateless
passwordless ceremonies in ``ceremonies``), sign-in with a second factor after
MFA_REQUIRED (``mfa``), and what a factor attempt may look like (``attempts``).
"""
