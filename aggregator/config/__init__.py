"""The operator's configuration: defaults, the YAML file, command-line overrides, every problem
listed at once.

The public face of the sub-package: nothing outside it imports its inner modules.
Names resolve on first use (PEP 562), so importing the face loads only what is asked for:
a build with nothing to do never pays for feedgen, watchdog or the HTTP client.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

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


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value
