"""A simple config is read without PyYAML, to the very value PyYAML reads from it.

`config.loading` reads a config of block mappings, plain words and one-line flow collections
with the articles' fast reader, and leaves everything else to PyYAML. PyYAML is the
reference: whatever the fast path returns must equal `yaml.safe_load`'s value.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from aggregator.config import load_config
from aggregator.config.loading import _parse_simple

# What bench/build.py writes, and a few more a person might.
SIMPLE = [
    "formats: [rss, atom]\nserve: {gzip_sidecars: false}\n",
    "formats: [rss, atom, json]\nserve: {gzip_sidecars: true}\n",
    "formats: [rss,atom]\nmax_items: 20\n",
    "websub:\n  hubs: []\nfeeds: []\ncatalog: null\nnode: ~\n",
    "daemon: {debounce_seconds: 1, debounce_max_seconds: 3}\nlogging:\n  level: DEBUG\n",
    "builtin_feeds: {}\nfeed_titles:\n  site: My site  # a comment\n",
    "# a comment first\nlanguage: en\nformats: [rss]\n",
]

# Read by PyYAML: what the fast path is not sure of.
DECLINED = [
    "formats: ['rss', atom]\n",  # quoted
    "formats: [rss, [atom]]\n",  # nested
    "formats: [rss, atom] # comment\n",
    "feeds:\n  - name: x\n    topics: []\n",  # an empty collection inside a sequence
    "serve: {gzip_sidecars: }\n",
    "input: ../seeds\n",  # a plain scalar starting with '.'
    "formats: [rss, atom\n",  # not YAML at all
    "a: [x]\na: [y]\n",  # duplicate keys
]


@pytest.mark.parametrize("text", SIMPLE)
def test_a_simple_config_is_read_as_pyyaml_reads_it(text: str) -> None:
    value = _parse_simple(text)
    assert value is not None
    assert value == yaml.safe_load(text)


@pytest.mark.parametrize("text", DECLINED)
def test_anything_else_is_left_to_pyyaml(text: str) -> None:
    assert _parse_simple(text) is None


def test_a_config_file_loads_the_same_either_way(tmp_path: Path) -> None:
    """The settings of a file read on the fast path are those of the same config with its
    words quoted, which only PyYAML reads."""
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "formats: [rss, json]\nserve: {gzip_sidecars: false}\nwebsub: {hubs: []}\n",
        encoding="utf-8",
    )
    quoted = tmp_path / "quoted.yaml"  # quoted words: read by PyYAML
    quoted.write_text(
        'formats: ["rss", "json"]\nserve: {gzip_sidecars: false}\nwebsub: {hubs: []}\n',
        encoding="utf-8",
    )
    assert _parse_simple(quoted.read_text(encoding="utf-8")) is None
    assert load_config(flow, {}).settings == load_config(quoted, {}).settings


WORDS = st.sampled_from(
    [
        "rss", "atom", "json", "true", "false", "True", "yes", "no", "on", "off", "y", "n",
        "null", "Null", "1", "012", "0x1F", "1_000", "1e3", "1.5", "0", "-1", "2021-12-22",
        "2021-12-22T13:00:00Z", "a.b", "a-b", "x_1", "NaN", "inf", "DEBUG", "en",
    ]
)  # fmt: skip
KEYS = st.sampled_from(["formats", "serve", "level", "on", "yes", "a", "b", "max_items"])


@st.composite
def values(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["word", "seq", "map", "empty-seq", "empty-map", "null"]))
    if kind == "word":
        return draw(WORDS)
    if kind == "seq":
        sep = draw(st.sampled_from([", ", ",", " , "]))
        return "[" + sep.join(draw(st.lists(WORDS, min_size=1, max_size=4))) + "]"
    if kind == "map":
        pairs = draw(st.lists(st.tuples(KEYS, WORDS), min_size=1, max_size=3))
        return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    return {"empty-seq": "[]", "empty-map": "{}", "null": draw(st.sampled_from(["null", "~"]))}[
        kind
    ]


@st.composite
def configs(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(1, 6))):
        key = draw(KEYS)
        if draw(st.booleans()):
            lines.append(f"{key}: {draw(values())}")
        else:
            lines.append(f"{key}:")
            for _ in range(draw(st.integers(1, 3))):
                lines.append(f"  {draw(KEYS)}: {draw(values())}")
    return "\n".join(lines) + "\n"


@given(configs())
def test_the_fast_path_never_differs_from_pyyaml(text: str) -> None:
    value = _parse_simple(text)
    if value is None:
        return
    assert value == yaml.safe_load(text)
