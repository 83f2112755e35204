"""PyYAML behind guards: the front matter the fast parser declines, read at a bounded cost.

PyYAML is the reference for what the YAML means (`safe_load`, YAML 1.1). It is only reached for
files the fast parser declines, and only after the event stream has shown the document holds no
anchors or aliases (billion-laughs), no nesting deeper than `MAX_DEPTH`, no more than
`MAX_VALUES` values, and no tags beyond the core schema (`!!python/object/apply:...` and
friends are rejected before anything is built). Numbers longer than `MAX_NUMERAL_CHARS` stay
text. So no file under the size limit costs more than a fraction of a second to read.

The functions take the loader class (default `LOADER`, made on libyaml's when PyYAML has it),
so that the tests run the guards on each base loader without patching this module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import yaml

from aggregator.errors import ArticleError
from aggregator.reading.front_matter import MAX_DEPTH, MAX_VALUES
from aggregator.reading.values import kind_of, short_repr

MAX_NUMERAL_CHARS = 100
"""A number written with more characters than this is kept as its text.

No article field needs such a number, and PyYAML's cost for some is quadratic in their length
(a sexagesimal `1:0:0:...` of 1 MiB took 15 s of CPU); a huge integer also cannot be turned
into text (Python refuses more than 4,300 digits) nor stored as JSON.
"""


def _timestamp_or_text(loader: yaml.SafeLoader, node: yaml.Node) -> object:
    # PyYAML raises a bare ValueError for `2021-02-30` or `25:00` (and a TypeError for
    # `!!timestamp x`), and the whole file would be reported as malformed YAML; keeping the
    # text lets the field check name the field instead.
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(
            None, None, "a list or mapping is not a valid !!timestamp", node.start_mark
        )
    try:
        return loader.construct_yaml_timestamp(node)
    except Exception:
        return node.value


def _guarded(
    tag: str, construct: Callable[[yaml.SafeLoader, yaml.Node], object], *, numeral: bool
) -> Callable[[yaml.SafeLoader, yaml.Node], object]:
    """`construct` with bounded cost, and with its failures said as YAML errors with a place.

    PyYAML's scalar constructors fail with bare KeyError, IndexError or ValueError for a value
    their explicit tag cannot take (`!!bool x`, an empty `!!int`).
    """

    def run(loader: yaml.SafeLoader, node: yaml.Node) -> object:
        if numeral and isinstance(node, yaml.ScalarNode) and len(node.value) > MAX_NUMERAL_CHARS:
            return node.value
        try:
            return construct(loader, node)
        except yaml.YAMLError:
            raise
        except Exception:
            shown = short_repr(node.value) if isinstance(node, yaml.ScalarNode) else "this value"
            raise yaml.constructor.ConstructorError(
                None, None, f"{shown} is not a valid !!{tag}", node.start_mark
            ) from None

    return run


def loader_class(base: type[yaml.SafeLoader]) -> type[yaml.SafeLoader]:
    """`base` with invalid timestamps kept as text, over-long numbers kept as text, and
    constructor failures made YAML errors (a subclass: the base stays untouched)."""
    loader: type[yaml.SafeLoader] = type("_Loader", (base,), {})
    loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)
    for tag, numeral in (("int", True), ("float", True), ("bool", False), ("null", False)):
        construct = base.yaml_constructors[f"tag:yaml.org,2002:{tag}"]
        loader.add_constructor(
            f"tag:yaml.org,2002:{tag}", _guarded(tag, construct, numeral=numeral)
        )
    return loader


# libyaml's parser is ~7x quicker than the pure-Python one for the files handed over.
LOADER = loader_class(getattr(yaml, "CSafeLoader", yaml.SafeLoader))

_CORE_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map")
)
_NODE_EVENTS = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)


def load_guarded(text: str, source: str, loader: type[yaml.SafeLoader] | None = None) -> object:
    """What `loader` (one `loader_class` made) builds of `text`, once the events have shown
    nothing that could hurt; raises `ArticleError` naming what is wrong, and where."""
    loader = loader or LOADER
    try:
        _check_events(text, source, loader)
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise ArticleError(source, _yaml_problem(exc, text)) from None
    except ValueError as exc:
        # PyYAML lets a few bad scalars through as bare ValueErrors: `"\U00110000"`, `0x_`.
        raise ArticleError(source, f"malformed YAML: {exc}; fix the front matter") from None


def _check_events(text: str, source: str, loader: type[yaml.SafeLoader]) -> None:
    """Refuse what could hurt before PyYAML builds anything: aliases, tags, deep nesting.

    Streaming the events stops at the first offence, so a billion-laughs file or one nested
    ten thousand levels deep costs a few microseconds and never reaches the recursive composer.
    """
    try:
        _scan_events(text, source, loader)
    except yaml.YAMLError:
        # libyaml reads tokens ahead of the events and may stop on an error of its own (its
        # nesting limit, worded differently from one release to the next) before our check
        # sees the offence. The pure-Python parser streams the same events lazily: if it
        # meets one of our offences first, that is the reason given; if not, libyaml's is.
        # It is some 10 times slower: only the first _PURE_SCAN_CHARS are scanned again
        # (an error at the end of 1 MiB took it 4 s), which holds any nesting libyaml's
        # limit can refuse.
        c_loader = getattr(yaml, "CSafeLoader", None)
        if c_loader is not None and issubclass(loader, c_loader):
            # An error of the text (or of its cut) there: libyaml's is the one to give.
            with contextlib.suppress(yaml.YAMLError):
                _scan_events(text[:_PURE_SCAN_CHARS], source, _PURE_LOADER)
        raise


_PURE_SCAN_CHARS = 65_536


_PURE_LOADER = loader_class(yaml.SafeLoader)


def _scan_events(text: str, source: str, loader: type[yaml.SafeLoader]) -> None:
    depth = 0
    values = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.AliasEvent):
            raise ArticleError(
                source,
                f"YAML alias *{event.anchor} at line {_line(event)}: anchors and aliases are"
                " not allowed in articles; write the value out in full",
            )
        if isinstance(event, _NODE_EVENTS):
            values += 1
            if values > MAX_VALUES:
                raise ArticleError(
                    source,
                    f"front matter holds more than {MAX_VALUES:,} keys and values (line"
                    f" {_line(event)});"
                    " an article needs a few hundred at most: move the rest out of the file",
                )
            if event.anchor is not None:
                raise ArticleError(
                    source,
                    f"YAML anchor &{event.anchor} at line {_line(event)}: anchors and aliases"
                    " are not allowed in articles; write the value out in full",
                )
            tag = event.tag
            if tag is not None and tag != "!" and tag not in _CORE_TAGS:
                shown = tag.replace("tag:yaml.org,2002:", "!!", 1)
                raise ArticleError(
                    source,
                    f"YAML tag {shown} at line {_line(event)} is not allowed: remove it (article"
                    " fields are plain text, numbers, dates, lists and mappings)",
                )
            if not isinstance(event, yaml.ScalarEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ArticleError(
                        source,
                        f"front matter is nested more than {MAX_DEPTH} levels deep (line"
                        f" {_line(event)}); articles need a handful at most",
                    )
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def _line(event: yaml.Event) -> int:
    # The front matter starts on the file's second line, after the opening `---`.
    mark = event.start_mark
    return int(mark.line) + 2 if mark is not None else 0


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    where = ""
    problem: str = str(exc)
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            where = f" at line {mark.line + 2}, column {mark.column + 1}"
        problem = exc.problem or problem
        if exc.context:
            problem = f"{problem} ({exc.context})"
    elif isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 2
        where = f" at line {line}"
        problem = f"unacceptable character {exc.character!r}"
    return (
        f"malformed YAML{where}: {problem}; fix the front matter"
        " (text holding ': ' or ' #' needs quotes)"
    )


def scalar_text(
    value: object, source: str, field: str, text: str, loader: type[yaml.SafeLoader] | None
) -> str:
    """The text of a scalar YAML read as a number, date or boolean, as it was written."""
    if isinstance(value, (list, dict)):
        raise ArticleError(source, f"must be text, not {kind_of(value)}", field=field)
    node = node_as_written(text, field, loader)
    return node.value if isinstance(node, yaml.ScalarNode) else str(value)


def items_as_written(
    text: str, key: str, loader: type[yaml.SafeLoader] | None = None
) -> dict[int, str]:
    """The text of each scalar item of top-level sequence `key` as written, by its index
    (none if `key` is no sequence)."""
    node = node_as_written(text, key, loader)
    if not isinstance(node, yaml.SequenceNode):
        return {}
    return {i: n.value for i, n in enumerate(node.value) if isinstance(n, yaml.ScalarNode)}


def node_as_written(
    text: str, key: str, loader: type[yaml.SafeLoader] | None = None
) -> yaml.Node | None:
    """The node of top-level `key` as written, to keep `title: 2021` as the text `2021`."""
    node = yaml.compose(text, Loader=loader or LOADER)  # safe: the text has already loaded
    found: yaml.Node | None = None
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                found = value_node  # the last one wins, as in the mapping
    return found
