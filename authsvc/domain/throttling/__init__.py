"""Throttling: the tarpits in front of every guess (``throttle``)."""
