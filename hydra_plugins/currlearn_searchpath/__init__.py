"""Hydra search-path plugin of currlearn (``hydra_plugins`` itself is a namespace package)."""
