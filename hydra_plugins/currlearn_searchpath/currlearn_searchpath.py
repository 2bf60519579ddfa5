"""Adds currlearn's config tree (``pkg://currlearn.conf``) to every Hydra app's search path.

With currlearn installed, a user's own ``@hydra.main`` app can compose currlearn's groups,
e.g. ``defaults: [{curriculum: plr}]`` or ``curriculum=level`` on the command line. The path
comes after the app's own config directory and after Hydra's ConfigStore (structured
configs): a user's config of the same group and name, file or structured, wins over
currlearn's.
"""

from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

PATH = "pkg://currlearn.conf"


class CurrlearnSearchPathPlugin(SearchPathPlugin):
    """Appends ``structured://`` then ``pkg://currlearn.conf`` (provider ``currlearn``)."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:  # noqa: D102
        if any(element.path == PATH for element in search_path.get_path()):
            return  # currlearn's own app: its primary config path already
        # Hydra adds the ConfigStore at the very end; searching it before currlearn's YAML lets a
        # user's structured config of the same name win (and keeps Hydra from merging the two).
        search_path.append(provider="schema", path="structured://")
        search_path.append(provider="currlearn", path=PATH)
