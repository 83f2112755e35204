"""The custom feeds' patterns (`title_matches`, `excerpt_matches`): RE2, whose matching time is
linear in the text, so no pattern and no title can hang a build. The only user of re2.

Titles and excerpts come from the content team, the patterns from the operator: with a
backtracking engine (Python's `re`) a plausible pattern such as `^(\\w+\\s?)*$` takes minutes on
a 17-word title ending in `!`, and holds the GIL all that time (the daemon's server stopped
answering and SIGTERM was ignored). RE2 has no backtracking, and so no backreferences,
lookarounds, atomic groups or possessive repeats: those are refused when the config loads,
each with a sentence saying what to write instead.

The accepted syntax is RE2's (https://github.com/google/re2/wiki/Syntax), with Python's
meaning kept where the two differ on the same spelling: `\\w`, `\\d` and `\\s` (and `\\W`, `\\D`,
`\\S`) match Unicode word characters, digits and spaces as Python's do (RE2's are ASCII), and
`\\Z` is the end of the text. `\\b` is RE2's (ASCII) word boundary.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aggregator.errors import AggregatorError

# Python's classes for str patterns, in RE2's Unicode properties. Python's `\w` is
# `str.isalnum()` or `_` (letters and numbers of every script), `\d` the decimal digits, `\s`
# `str.isspace()` (ASCII controls \t-\r, \x1c-\x1f, \x85 and the Unicode separators).
_WORD = r"\p{L}\p{N}_"
_DIGIT = r"\p{Nd}"
_SPACE = r"\t\n\v\f\r\x1c-\x1f\x85\p{Z}"
_OUTSIDE = {
    "w": f"[{_WORD}]",
    "W": f"[^{_WORD}]",
    "d": _DIGIT,
    "D": r"\P{Nd}",
    "s": f"[{_SPACE}]",
    "S": f"[^{_SPACE}]",
    "Z": r"\z",
}
_INSIDE = {"w": _WORD, "d": _DIGIT, "D": r"\P{Nd}", "s": _SPACE}

# What Python accepts and RE2 does not, with what to write instead. Checked in this order on
# the pattern's text; the first that occurs explains the refusal.
_UNSUPPORTED = (
    ("(?=", "a lookahead `(?=…)`"),
    ("(?!", "a negative lookahead `(?!…)`"),
    ("(?<=", "a lookbehind `(?<=…)`"),
    ("(?<!", "a negative lookbehind `(?<!…)`"),
    ("(?>", "an atomic group `(?>…)`"),
    ("(?P=", "a backreference `(?P=name)`"),
    ("(?(", "a conditional `(?(…)…)`"),
    ("(?#", "a comment `(?#…)`"),
    ("(?x", "the verbose flag `(?x)`"),
    ("(?a", "the ASCII flag `(?a)`"),
    ("(?L", "the locale flag `(?L)`"),
    ("(?u", "the unicode flag `(?u)` (it is always on)"),
)


class PatternError(AggregatorError):
    """A pattern the config cannot use; the message says why, without the key (the caller
    names it)."""


class Pattern:
    """A compiled pattern, searched anywhere in a text (as `re.search`). Pickles as its text, so
    a feed definition travels to the worker processes."""

    __slots__ = ("_compiled", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._compiled = _compile(pattern)

    def search(self, text: str) -> bool:
        """Whether the pattern matches somewhere in `text`."""
        return self._compiled.search(text) is not None

    def __reduce__(self) -> tuple[type[Pattern], tuple[str]]:
        return (Pattern, (self.pattern,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pattern) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"Pattern({self.pattern!r})"


@cache
def _options() -> Any:
    # Imported on first use: most configs define no pattern, and a build that compiles none
    # need not load the library.
    import re2

    options = re2.Options()
    # RE2 writes each refused pattern to stderr itself (through absl); the config error
    # already says it, once, with the key.
    options.log_errors = False
    return options


def _compile(pattern: str) -> Any:
    for spelling, what in _UNSUPPORTED:
        if _outside_escapes(pattern, spelling):
            raise PatternError(
                f"{what} is not supported: the syntax is RE2's, which matches in linear time "
                "and has no lookarounds, backreferences, atomic groups or verbose mode "
                "(https://github.com/google/re2/wiki/Syntax); rewrite the pattern without it"
            )
    translated = translate(pattern)
    import re2

    try:
        return re2.compile(translated, _options())
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args else str(exc)
        if "invalid escape sequence: \\" in reason and reason[-1:].isdigit():
            raise PatternError(
                "a backreference (\\1, \\2, …) is not supported: patterns are RE2's, which "
                "match in linear time; rewrite it without"
            ) from None
        if "bad repetition operator" in reason:
            reason += " (possessive repeats such as `a++` are not supported)"
        raise PatternError(
            f"not a valid regular expression ({reason}; the syntax is RE2's)"
        ) from None


def _outside_escapes(pattern: str, spelling: str) -> bool:
    """Whether `spelling` occurs in `pattern` other than right after a backslash."""
    start = pattern.find(spelling)
    while start != -1:
        backslashes = len(pattern[:start]) - len(pattern[:start].rstrip("\\"))
        if backslashes % 2 == 0:
            return True
        start = pattern.find(spelling, start + 1)
    return False


def translate(pattern: str) -> str:
    """The pattern with Python's Unicode `\\w \\d \\s` (and their negations) and `\\Z` spelled
    as RE2 says them; everything else as written.

    Inside a character class `\\W` and `\\S` cannot be spelled (RE2 has no negation of a
    union inside `[…]`): they are refused.
    """
    out: list[str] = []
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            escaped = pattern[index + 1]
            if in_class and escaped in "WS":
                raise PatternError(
                    f"\\{escaped} inside [...] is not supported; write the class negated "
                    f"instead (e.g. [^\\{escaped.lower()}...])"
                )
            table = _INSIDE if in_class else _OUTSIDE
            out.append(table.get(escaped, char + escaped))
            index += 2
            continue
        if in_class:
            if char == "]" and not _class_just_opened(out):
                in_class = False
            elif char == "[" and pattern.startswith("[:", index):
                # A POSIX class `[:alpha:]` inside a class: copied whole.
                end = pattern.find(":]", index + 2)
                if end != -1:
                    out.append(pattern[index : end + 2])
                    index = end + 2
                    continue
        elif char == "[":
            in_class = True
        out.append(char)
        index += 1
    return "".join(out)


def _class_just_opened(out: list[str]) -> bool:
    """Whether a `]` here is the class's first character (literal, as in `[]a]` or `[^]a]`)."""
    if out and out[-1] == "[":
        return True
    return len(out) >= 2 and out[-1] == "^" and out[-2] == "["
