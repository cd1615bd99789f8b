"""Throttling: the tarpits in front of every guess (``throttle``) and the one on
messages sent to an address (``sends``)."""
