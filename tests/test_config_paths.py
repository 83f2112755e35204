"""Folders in a config file are relative to that file, flags to the current folder: through
the real command line, from a folder other than the site's."""

from __future__ import annotations

import shutil
from pathlib import Path

from articlefiles import write_article
from clirun import cli

ROOT = Path(__file__).resolve().parents[1]


def site(tmp_path: Path) -> tuple[Path, Path]:
    """`aggregator init site` in tmp_path, and an unrelated folder to run from."""
    done = cli("init", "site", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return tmp_path / "site", elsewhere


def test_a_config_given_from_elsewhere_builds_the_folders_beside_it(tmp_path: Path) -> None:
    folder, elsewhere = site(tmp_path)
    for flag in ("--config", "-c"):
        done = cli("build", flag, "../site/aggregator.yaml", cwd=elsewhere)
        assert done.returncode == 0, done.stderr
    assert (folder / "feeds/all.rss.xml").is_file()
    assert (folder / ".aggregator/catalog.sqlite3").is_file()
    assert list(elsewhere.iterdir()) == []  # nothing made where it ran from


def test_the_default_folders_are_beside_the_config_file_too(tmp_path: Path) -> None:
    """A config that names no folder: init's layout (articles/, feeds/, .aggregator/) next
    to the file, not in the current folder."""
    folder = tmp_path / "site"
    write_article(folder / "articles", "a.txt", "https://a.example.com/")
    (folder / "aggregator.yaml").write_text("max_items: 9\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = cli("build", "-c", str(folder / "aggregator.yaml"), cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert "1 article file read, 1 published" in done.stdout
    assert (folder / "feeds/all.atom.xml").is_file()
    assert (folder / ".aggregator").is_dir()
    shown = cli("config", "-c", str(folder / "aggregator.yaml"), cwd=elsewhere).stdout
    assert f"relative folders of the file, and the default ones, are taken from {folder}" in shown
    lines = {line.split(":", 1)[0]: line for line in shown.splitlines() if "#" in line}
    assert lines["input"].startswith(f"input: {folder / 'articles'} ")
    assert lines["input"].endswith("# default")
    assert lines["max_items"].endswith(f"# file:{folder / 'aggregator.yaml'}")


def test_folders_given_as_flags_stay_relative_to_the_current_folder(tmp_path: Path) -> None:
    folder, elsewhere = site(tmp_path)
    done = cli("build", "-c", "../site/aggregator.yaml", "--output", "out", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert (elsewhere / "out/all.rss.xml").is_file()
    assert not (folder / "feeds/all.rss.xml").exists()
    shown = cli("config", "-c", "../site/aggregator.yaml", "--output", "out", cwd=elsewhere)
    assert "output: out " in shown.stdout
    assert "# flag:--output" in shown.stdout


def test_a_missing_input_is_named_by_its_resolved_path(tmp_path: Path) -> None:
    folder, elsewhere = site(tmp_path)
    config = folder / "aggregator.yaml"
    text = config.read_text(encoding="utf-8").replace("input: articles", "input: ../drafts")
    config.write_text(text, encoding="utf-8")
    done = cli("build", "-c", "../site/aggregator.yaml", cwd=elsewhere)
    assert done.returncode == 2
    assert f"the folder {tmp_path / 'drafts'} does not exist" in done.stderr
    # A flag's folder too: from the current folder, shown whole.
    done = cli("check", "--input", "nowhere", cwd=elsewhere)
    assert done.returncode == 2
    assert f"the folder {elsewhere / 'nowhere'} does not exist" in done.stderr


def test_absolute_folders_and_home_in_the_file_are_taken_as_written(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_article(home / "notes", "a.txt", "https://a.example.com/")
    (tmp_path / "c").mkdir()
    (tmp_path / "c/aggregator.yaml").write_text(
        f"input: ~/notes\noutput: {tmp_path / 'public'}\nstate: ~/.state\n", encoding="utf-8"
    )
    done = cli("build", "-c", "c/aggregator.yaml", cwd=tmp_path, env={"HOME": str(home)})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "public/all.json").is_file()
    assert (home / ".state/catalog.sqlite3").is_file()


def test_the_repository_config_builds_the_seeds_from_any_folder(tmp_path: Path) -> None:
    """config/aggregator.yaml names ../seeds: run from the clone's root (./run.sh build) or
    from anywhere else, it builds the clone's seeds into its feeds, byte for byte the
    committed ones."""
    clone = tmp_path / "clone"
    for name in ("seeds", "config", "feeds"):
        shutil.copytree(ROOT / name, clone / name)
    committed = {p.relative_to(clone): p.read_bytes() for p in (clone / "feeds").rglob("*")
                 if p.is_file() and p.suffix != ".gz"}  # fmt: skip
    shutil.rmtree(clone / "feeds")
    done = cli("build", "--config", str(clone / "config/aggregator.yaml"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "5 article files read, 1 published, 0 rejected; feeds: 4 written" in done.stdout
    built = {p.relative_to(clone): p.read_bytes() for p in (clone / "feeds").rglob("*")
             if p.is_file() and p.suffix != ".gz"}  # fmt: skip
    assert built == committed
    assert (clone / ".aggregator/catalog.sqlite3").is_file()
    again = cli("build", cwd=clone)  # the default config/aggregator.yaml, from the root
    assert again.returncode == 0, again.stderr
    assert "0 article files read" in again.stdout  # the same catalog and folders
