"""`aggregator init`: a starter folder for people who installed the package (pip, pipx).

The config template ships inside the package (`aggregator/templates/`), so an installed
`aggregator` can write it; this repository's `config/aggregator.yaml` is the same template
filled in for `seeds/` (a test keeps the two equal). Relative folders in a config file are
taken from the file's folder: the repository's, in `config/`, names `../seeds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from aggregator.config import Settings
from aggregator.errors import AggregatorError

CONFIG_NAME = "aggregator.yaml"
SAMPLE_NAME = "welcome.md"


@dataclass(frozen=True, slots=True)
class StarterFolder:
    """What `create_starter` did: the files and folders it made, and the files it kept."""

    written: tuple[Path, ...]
    kept: tuple[Path, ...]


def _template(name: str) -> str:
    return resources.files("aggregator").joinpath("templates", name).read_text(encoding="utf-8")


def config_text(*, input: str, output: str, state: str, base_url: str) -> str:
    """The commented config (every key, its default), with these paths and base URL."""
    values = {"input": input, "output": output, "state": state, "base_url": base_url}
    return Template(_template(CONFIG_NAME)).substitute(values)


def repository_config_text() -> str:
    """`config/aggregator.yaml` of this repository: seeds/ → feeds/, both beside config/."""
    return config_text(
        input="../seeds",
        output="../feeds",
        state="../.aggregator",
        base_url="http://localhost:8000/",
    )


def starter_config_text() -> str:
    """The config `aggregator init` writes: articles/ → feeds/, served locally."""
    defaults = Settings()
    return config_text(
        input=str(defaults.input),
        output=str(defaults.output),
        state=str(defaults.state),
        base_url=defaults.base_url,
    )


def create_starter(folder: Path) -> StarterFolder:
    """Write `folder/aggregator.yaml`, `folder/articles/welcome.md` and `folder/feeds/`.

    An existing file is never overwritten (it is listed as kept), so running it twice, or
    in a folder already set up, is harmless.
    """
    written: list[Path] = []
    kept: list[Path] = []
    files = {
        folder / CONFIG_NAME: starter_config_text(),
        folder / "articles" / SAMPLE_NAME: _template("sample-article.md"),
    }
    try:
        for sub in (folder, folder / "articles", folder / "feeds"):
            if not sub.is_dir():
                sub.mkdir(parents=True, exist_ok=True)
                written.append(sub)
        for path, text in files.items():
            try:
                # "x": created only if absent, atomically, so nothing is ever overwritten.
                with path.open("x", encoding="utf-8") as handle:
                    handle.write(text)
            except FileExistsError:
                kept.append(path)
            else:
                written.append(path)
    except OSError as exc:
        raise AggregatorError(
            f"cannot set up {folder}: {exc.strerror or exc} ({exc.filename or folder}); "
            "choose a folder you can write to"
        ) from exc
    return StarterFolder(tuple(written), tuple(kept))
