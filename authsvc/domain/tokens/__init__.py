"""Access tokens: issuing them (``issuer``), verifying them for the door and
introspection (``validator``), and the signing keys both use (``keystore``)."""
