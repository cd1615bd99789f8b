"""Settings, read once into a frozen, typed object.

``Settings.from_env`` reads the ``AUTHSVC_*`` variables; a missing or invalid
value raises ``ConfigError`` naming the variable. Tests build settings with
``Settings(...)`` or ``Settings.from_env({...})`` directly. Secrets are
wrapped in ``Secret`` so they print masked. Each setting is declared once, in
``settings.py``; ``python -m authsvc.config`` prints the reference page made
from those declarations (``docs/configuration.md``).
"""

from .settings import Settings
from .values import Secret, encode_key, mask_url, parse_listen, read_key_file, webhook_secret

__all__ = ["Secret", "Settings", "encode_key", "mask_url", "parse_listen", "read_key_file",
           "webhook_secret"]
