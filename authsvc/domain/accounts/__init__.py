"""Accounts: who may sign in and how they prove their address.

Operators' administration (``admin``), sign-up and address verification
(``signup``), password change and reset (``password_change``), the one-time codes
those send (``codes``), identifiers and the rules for new passwords
(``identifiers``, ``blocklist``), password hashing (``passwords``), and the
bundle of self-service flows handed to the transport (``self_service``).
"""
