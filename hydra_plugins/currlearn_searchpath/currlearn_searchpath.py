"""Adds currlearn's config tree (``pkg://currlearn.conf``) to every Hydra app's search path.

With currlearn installed, a user's own ``@hydra.main`` app can compose currlearn's groups,
e.g. ``defaults: [{curriculum: level}, {env: point_mass}]`` or ``curriculum=level`` on the
command line. The path is appended, so the app's own configs of the same name win.
"""

from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class CurrlearnSearchPathPlugin(SearchPathPlugin):
    """Appends ``pkg://currlearn.conf`` (provider ``currlearn``)."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:  # noqa: D102
        search_path.append(provider="currlearn", path="pkg://currlearn.conf")
