"""The operator's configuration: defaults, the YAML file, command-line overrides, every problem
listed at once.

Its public face (see `aggregator.faces`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregator.faces import resolver

if TYPE_CHECKING:
    from aggregator.config.folders import check_folders, check_input, check_overlaps
    from aggregator.config.loading import (
        LoadedConfig,
        effective_values,
        load_config,
        load_settings,
        yaml_value,
    )
    from aggregator.config.settings import (
        DEFAULT_CONFIGS,
        DEFAULT_MAX_EXCERPT_CHARS,
        FeedTitles,
        Settings,
    )

__all__ = [
    "DEFAULT_CONFIGS",
    "DEFAULT_MAX_EXCERPT_CHARS",
    "FeedTitles",
    "LoadedConfig",
    "Settings",
    "check_folders",
    "check_input",
    "check_overlaps",
    "effective_values",
    "load_config",
    "load_settings",
    "yaml_value",
]

_HOME = {
    "DEFAULT_CONFIGS": "aggregator.config.settings",
    "DEFAULT_MAX_EXCERPT_CHARS": "aggregator.config.settings",
    "FeedTitles": "aggregator.config.settings",
    "LoadedConfig": "aggregator.config.loading",
    "Settings": "aggregator.config.settings",
    "check_folders": "aggregator.config.folders",
    "check_input": "aggregator.config.folders",
    "check_overlaps": "aggregator.config.folders",
    "effective_values": "aggregator.config.loading",
    "load_config": "aggregator.config.loading",
    "load_settings": "aggregator.config.loading",
    "yaml_value": "aggregator.config.loading",
}

__getattr__ = resolver(__name__, _HOME, globals())
