"""Shell completion scripts (bash, zsh, fish), made from the argparse parser.

Written here rather than taken from shtab or argcomplete: the command line is small (a few
subcommands, flags with a folder, a file or a fixed set of words as value), the three scripts
are a page each, and the output is then plain, reviewable shell with no runtime dependency
(argcomplete would start Python on every Tab press). `describe` reads the parser once into
plain data that the man page (`manpage.py`) uses too.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["CommandSpec", "OptionSpec", "completion_script", "describe", "global_options"]


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """A flag or a positional of one command, as completion and the man page need it."""

    names: tuple[str, ...]  # ("-v", "--verbose"); a positional has none
    metavar: str  # "DIR", "FILE", "URL", …; "" for a flag without a value
    choices: tuple[str, ...]
    help: str
    repeats: bool = False  # a positional taking many values

    @property
    def takes_value(self) -> bool:
        """Whether a value follows the flag."""
        return bool(self.metavar or self.choices)

    @property
    def value_kind(self) -> str:
        """What to complete for its value: `dir`, `file`, `words` or `none`."""
        if self.choices:
            return "words"
        if self.metavar == "DIR":
            return "dir"
        if self.metavar == "FILE":
            return "file"
        return "none"


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """A subcommand: its name, one-line help, description, flags and positionals."""

    name: str
    help: str
    description: str
    options: tuple[OptionSpec, ...]
    positionals: tuple[OptionSpec, ...]


def _spec(action: argparse.Action) -> OptionSpec:
    choices = tuple(str(c) for c in action.choices) if action.choices else ()
    takes_value = action.nargs != 0
    metavar = ""
    if takes_value:
        metavar = action.metavar if isinstance(action.metavar, str) else ""
        if not metavar and not choices:
            metavar = (action.dest or "VALUE").upper()
    return OptionSpec(
        names=tuple(action.option_strings),
        metavar=metavar,
        choices=choices,
        help=" ".join((action.help or "").split()),
        repeats=action.nargs in ("*", "+"),
    )


def describe(
    parser: argparse.ArgumentParser, subparsers: Mapping[str, argparse.ArgumentParser]
) -> list[CommandSpec]:
    """Every subcommand of `parser` (`subparsers`: each one's parser) as plain data."""
    helps = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
    commands = []
    for name, sub in subparsers.items():
        options: list[OptionSpec] = []
        positionals: list[OptionSpec] = []
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            (options if action.option_strings else positionals).append(_spec(action))
        commands.append(
            CommandSpec(
                name=name,
                help=helps.get(name, ""),
                description=" ".join((sub.description or "").split()),
                options=tuple(options),
                positionals=tuple(positionals),
            )
        )
    return commands


def global_options(parser: argparse.ArgumentParser) -> tuple[OptionSpec, ...]:
    """The flags taken before the command (`-c FILE`, `-q`, `-V`, …), but --help."""
    return tuple(
        _spec(action)
        for action in parser._actions
        if action.option_strings and not isinstance(action, argparse._HelpAction)
    )


def completion_script(
    shell: str,
    parser: argparse.ArgumentParser,
    subparsers: Mapping[str, argparse.ArgumentParser],
) -> str:
    """The completion script of `shell` (bash, zsh or fish) for `parser`'s program."""
    commands = describe(parser, subparsers)
    globals_ = global_options(parser)
    prog = parser.prog
    if shell == "bash":
        return _bash(prog, commands, globals_)
    if shell == "zsh":
        return _zsh(prog, commands, globals_)
    if shell == "fish":
        return _fish(prog, commands, globals_)
    raise ValueError(f"no completion for the shell {shell!r} (bash, zsh or fish)")


def _function_name(prog: str) -> str:
    return "_" + "".join(c if c.isalnum() else "_" for c in prog)


# --- bash -------------------------------------------------------------------------------


def _bash_value(kind: str, words: tuple[str, ...]) -> str:
    if kind == "dir":
        return 'COMPREPLY=($(compgen -d -- "$cur"))'
    if kind == "file":
        return 'COMPREPLY=($(compgen -f -- "$cur"))'
    if kind == "words":
        return f'COMPREPLY=($(compgen -W "{" ".join(words)}" -- "$cur"))'
    return "COMPREPLY=()"


def _bash(prog: str, commands: list[CommandSpec], globals_: tuple[OptionSpec, ...]) -> str:
    func = _function_name(prog)
    names = " ".join(c.name for c in commands)
    valued_globals = [o for o in globals_ if o.takes_value]
    global_flags = " ".join(n for o in globals_ for n in o.names)
    lines = [
        f"# bash completion for {prog}; generated by `{prog} completion bash`.",
        f"{func}() {{",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
        '    local cmd="" i',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        case "${COMP_WORDS[i]}" in',
    ]
    if valued_globals:  # their value is not the command
        skipped = "|".join(n for o in valued_globals for n in o.names)
        lines.append(f"            {skipped}) ((i++)) ;;")
    lines += [
        "            -*) ;;",
        '            *) cmd="${COMP_WORDS[i]}"; break ;;',
        "        esac",
        "    done",
        '    if [[ -z "$cmd" ]]; then',
    ]
    if valued_globals:
        lines.append('        case "$prev" in')
        for option in valued_globals:
            value = _bash_value(option.value_kind, option.choices)
            lines.append(f"            {'|'.join(option.names)}) {value}; return 0 ;;")
        lines.append("        esac")
    lines += [
        f'        COMPREPLY=($(compgen -W "{names} {global_flags} --help" -- "$cur"))',
        "        return 0",
        "    fi",
        '    case "$cmd" in',
    ]
    for command in commands:
        lines.append(f"        {command.name})")
        valued = [o for o in command.options if o.takes_value]
        if valued:
            lines.append('            case "$prev" in')
            for option in valued:
                value = _bash_value(option.value_kind, option.choices)
                lines.append(f"                {'|'.join(option.names)}) {value}; return 0 ;;")
            lines.append("            esac")
        flags = " ".join(n for o in command.options for n in o.names)
        lines.append('            if [[ "$cur" == -* ]]; then')
        lines.append(f'                COMPREPLY=($(compgen -W "{flags} --help" -- "$cur"))')
        lines.append("                return 0")
        lines.append("            fi")
        if command.positionals:
            positional = command.positionals[0]
            lines.append(f"            {_bash_value(positional.value_kind, positional.choices)}")
        lines.append("            ;;")
    lines += [
        "    esac",
        "    return 0",
        "}",
        f"complete -o filenames -o bashdefault -F {func} {prog}",
        "",
    ]
    return "\n".join(lines)


# --- zsh --------------------------------------------------------------------------------


def _zsh_text(text: str) -> str:
    """Text inside a single-quoted _arguments spec: no quote, bracket or colon survives."""
    text = text.replace("'", "'\\''")
    for char in "[]:":
        text = text.replace(char, "\\" + char)
    return text


def _zsh_action(option: OptionSpec) -> str:
    kind = option.value_kind
    if kind == "dir":
        return "_files -/"
    if kind == "file":
        return "_files"
    if kind == "words":
        return f"({' '.join(option.choices)})"
    return " "


def _zsh_option(option: OptionSpec) -> str:
    help_text = _zsh_text(option.help)
    value = ""
    if option.takes_value:
        value = f":{_zsh_text(option.metavar or 'VALUE')}:{_zsh_action(option)}"
    if len(option.names) > 1:
        exclusive = " ".join(option.names)
        names = "{" + ",".join(option.names) + "}"
        return f"'({exclusive})'{names}'[{help_text}]{value}'"
    return f"'{option.names[0]}[{help_text}]{value}'"


def _zsh(prog: str, commands: list[CommandSpec], globals_: tuple[OptionSpec, ...]) -> str:
    func = _function_name(prog)
    lines = [
        f"#compdef {prog}",
        f"# zsh completion for {prog}; generated by `{prog} completion zsh`.",
        f"{func}() {{",
        '    local curcontext="$curcontext" state line',
        "    local -a commands",
        "    commands=(",
    ]
    lines += [f"        '{c.name}:{_zsh_text(c.help)}'" for c in commands]
    lines += [
        "    )",
        "    _arguments -C \\",
        "        '(- *)'{-h,--help}'[show help]' \\",
    ]
    lines += [f"        {_zsh_option(option)} \\" for option in globals_]
    lines += [
        "        '1: :->command' \\",
        "        '*:: :->arguments'",
        '    case "$state" in',
        f"        command) _describe -t commands '{prog} command' commands ;;",
        "        arguments)",
        '            case "$words[1]" in',
    ]
    for command in commands:
        specs = ["'(- *)'{-h,--help}'[show help]'"]
        specs += [_zsh_option(option) for option in command.options]
        for positional in command.positionals:
            star = "*" if positional.repeats else ""
            label = _zsh_text(positional.metavar or "argument")
            specs.append(f"'{star}:{label}:{_zsh_action(positional)}'")
        indent = " " * 20
        joined = f" \\\n{indent}".join(specs)
        lines.append(f"                {command.name}) _arguments \\\n{indent}{joined} ;;")
    lines += [
        "            esac",
        "            ;;",
        "    esac",
        "}",
        f'if [[ "${{funcstack[1]}}" == "{func}" ]]; then',
        f'    {func} "$@"',
        "else",
        f"    compdef {func} {prog}",
        "fi",
        "",
    ]
    return "\n".join(lines)


# --- fish -------------------------------------------------------------------------------


def _fish_text(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_value(option: OptionSpec) -> str:
    kind = option.value_kind
    if kind == "dir":
        return " -x -a '(__fish_complete_directories)'"
    if kind == "file":
        return " -r -F"
    if kind == "words":
        return f" -x -a {_fish_text(' '.join(option.choices))}"
    if option.takes_value:
        return " -x"
    return ""


def _fish_names(option: OptionSpec) -> str:
    return "".join(
        f" -s {n[1:]}" if not n.startswith("--") else f" -l {n[2:]}" for n in option.names
    )


def _fish(prog: str, commands: list[CommandSpec], globals_: tuple[OptionSpec, ...]) -> str:
    names = " ".join(c.name for c in commands)
    lines = [
        f"# fish completion for {prog}; generated by `{prog} completion fish`.",
        f"complete -c {prog} -f",
        f"complete -c {prog} -n '__fish_use_subcommand' -s h -l help -d 'show help'",
    ]
    for option in globals_:
        lines.append(
            f"complete -c {prog} -n '__fish_use_subcommand'{_fish_names(option)}"
            f"{_fish_value(option)} -d {_fish_text(option.help)}"
        )
    for command in commands:
        lines.append(
            f"complete -c {prog} -n '__fish_use_subcommand' -a {command.name} "
            f"-d {_fish_text(command.help)}"
        )
    for command in commands:
        when = f"-n '__fish_seen_subcommand_from {command.name}'"
        for option in command.options:
            lines.append(
                f"complete -c {prog} {when}{_fish_names(option)}{_fish_value(option)} "
                f"-d {_fish_text(option.help)}"
            )
        for positional in command.positionals:
            lines.append(f"complete -c {prog} {when}{_fish_value(positional)}")
    lines.append(f"# subcommands: {names}")
    lines.append("")
    return "\n".join(lines)
