"""Sign-in with another identity provider: the configured providers (``providers``),
talking to them (``client``, over ``http``), and the flows of signing in, linking
and unlinking (``flows``)."""
