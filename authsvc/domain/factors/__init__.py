"""Second factors: the authenticator app and recovery codes (``otp``, with the RFC
6238 arithmetic in ``totp``), passkeys (``passkeys``, with the stateless
passwordless ceremonies in ``ceremonies``), and sign-in with a second factor
after MFA_REQUIRED (``mfa``).
"""
