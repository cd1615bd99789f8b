"""The authsvc benchmark (``scripts/bench``): see ``bench/__main__.py``."""
