"""Examples of using authsvc from another service."""
