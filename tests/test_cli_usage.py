"""The command line as people type it, through the real `aggregator` process: global flags
before the command, -q, -V, help, "did you mean", singular counts, honest origins and advice."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from articlefiles import write_article
from clirun import cli

from aggregator import __version__

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A folder made by `aggregator init` (one sample article)."""
    done = cli("init", "site", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return tmp_path / "site"


def test_global_flags_go_before_the_command(site: Path, tmp_path: Path) -> None:
    for config in (["--config", "site/aggregator.yaml"], ["-c", "site/aggregator.yaml"]):
        done = cli(*config, "build", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    assert (site / "feeds/all.rss.xml").is_file()
    shown = cli("--log-level", "debug", "-c", "site/aggregator.yaml", "config", cwd=tmp_path)
    assert re.search(r"^logging\.level: DEBUG +# flag:--log-level$", shown.stdout, re.M)
    # After the command wins over before it.
    shown = cli("--log-level", "debug", "config", "-c", "site/aggregator.yaml",
                "--log-level", "error", cwd=tmp_path)  # fmt: skip
    assert re.search(r"^logging\.level: ERROR ", shown.stdout, re.M)


def test_a_global_flag_a_command_does_not_use_is_refused(tmp_path: Path) -> None:
    done = cli("-c", "x.yaml", "init", "here", cwd=tmp_path)
    assert done.returncode == 2
    assert "aggregator init: error: init does not take -c/--config" in done.stderr
    assert not (tmp_path / "here").exists()


def test_quiet_prints_only_problems(site: Path) -> None:
    done = cli("-q", "build", cwd=site)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr == ""
    write_article(site / "articles", "bad.txt", "not a url")
    done = cli("build", "--quiet", cwd=site)
    assert done.stdout == ""
    assert "rejected bad.txt" in done.stderr  # a warning still shows
    checked = cli("check", "-q", cwd=site)
    assert checked.returncode == 1
    assert checked.stdout.startswith("rejected bad.txt")
    assert "checked" not in checked.stdout  # no summary line
    assert cli("-q", "init", "other", cwd=site).stdout == ""
    both = cli("build", "-q", "-v", cwd=site)
    assert both.returncode == 2
    assert "-q/--quiet and -v/--verbose cannot be given together" in both.stderr


def test_version_short_and_long(tmp_path: Path) -> None:
    for flag in ("-V", "--version"):
        done = cli(flag, cwd=tmp_path)
        assert done.returncode == 0
        assert done.stdout.strip() == f"aggregator {__version__}"


def test_a_mistyped_command_gets_a_did_you_mean(tmp_path: Path) -> None:
    done = cli("biuld", cwd=tmp_path)
    assert done.returncode == 2
    assert "unknown command 'biuld'; did you mean 'build'?" in done.stderr
    far = cli("xyzzy", cwd=tmp_path)
    assert "unknown command 'xyzzy' (commands: build, check, " in far.stderr
    choice = cli("catalog", "rebuidl", cwd=tmp_path)
    assert choice.returncode == 2
    assert "invalid choice: 'rebuidl'; did you mean 'rebuild'?" in choice.stderr


def test_help_lists_the_commands_or_describes_one(tmp_path: Path) -> None:
    everything = cli("help", cwd=tmp_path)
    assert everything.returncode == 0
    assert everything.stdout == cli("--help", cwd=tmp_path).stdout
    for name in ("build", "check", "run", "serve", "init", "help"):
        assert f"    {name} " in everything.stdout
    one = cli("help", "build", cwd=tmp_path)
    assert one.returncode == 0
    assert one.stdout == cli("build", "--help", cwd=tmp_path).stdout
    assert "--strict" in one.stdout
    wrong = cli("help", "biuld", cwd=tmp_path)
    assert wrong.returncode == 2
    assert "did you mean 'build'?" in wrong.stderr


def test_every_summary_line_counts_in_the_singular(site: Path) -> None:
    built = cli("build", "-v", cwd=site)
    assert "1 article file read, 1 published, 0 rejected; feeds: 3 written" in built.stdout
    # The change log of the same build: one item in each feed.
    assert "feed written all: 1 added, 0 updated, 0 removed, 1 item\n" in built.stderr
    assert "1 items" not in built.stderr
    checked = cli("check", cwd=site)
    assert "1 article file checked: 1 published, 0 rejected" in checked.stdout
    write_article(site / "articles", "bad.txt", "not a url")
    strict = cli("build", "--strict", cwd=site)
    assert "--strict: 1 article file rejected" in strict.stderr
    assert "1 article file read, 1 published, 1 rejected" in strict.stdout


def test_json_feed_is_named_wherever_the_formats_are(tmp_path: Path) -> None:
    top = " ".join(cli("--help", cwd=tmp_path).stdout.split())
    assert "RSS 2.0, Atom 1.0 and JSON Feed 1.1" in top
    page = (ROOT / "docs/aggregator.1").read_text(encoding="utf-8")
    assert "JSON Feed 1.1" in page
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "JSON Feed" in project["project"]["description"]


def test_the_templates_custom_feed_formats_are_what_a_build_writes(tmp_path: Path) -> None:
    """The template says a custom feed is written in the site's formats unless it names its
    own: a build of the template with one feed defined writes those files."""
    cli("init", "site", cwd=tmp_path)
    site = tmp_path / "site"
    text = (site / "aggregator.yaml").read_text(encoding="utf-8")
    assert "#   formats: [rss, atom, json], or fewer (default: the formats above)" in text
    assert "custom/<name>.json" in text
    text = text.replace("feeds: []", "feeds:\n  - name: mine\n  - name: two\n    formats: [atom]")
    (site / "aggregator.yaml").write_text(text, encoding="utf-8")
    assert cli("build", cwd=site).returncode == 0
    written = sorted(p.name for p in (site / "feeds/custom").iterdir() if p.suffix != ".gz")
    assert written == ["mine.atom.xml", "mine.json", "mine.rss.xml", "two.atom.xml"]


def test_config_says_default_for_a_null_that_means_the_default(site: Path) -> None:
    text = (site / "aggregator.yaml").read_text(encoding="utf-8")
    assert "\nnode: null\n" in text
    assert "\ncatalog: null\n" in text
    shown = cli("config", cwd=site).stdout
    assert re.search(r"^node: \S+ +# default$", shown, re.M), shown
    assert re.search(r"^catalog: null +# default$", shown, re.M), shown
    named = site / "named.yaml"
    named.write_text("node: ingest-1\n", encoding="utf-8")
    shown = cli("config", "-c", str(named), cwd=site).stdout
    assert re.search(rf"^node: ingest-1 +# file:{re.escape(str(named))}$", shown, re.M)


@pytest.mark.parametrize(
    ("make", "advice"),
    [
        ("file", "A file stands where the output path needs a folder"),
        ("proc", "The output folder cannot be created there"),
    ],
)
def test_an_output_folder_that_cannot_be_made_gets_advice_for_its_reason(
    site: Path, make: str, advice: str
) -> None:
    if make == "file":
        (site / "blocker").write_text("a file, not a folder\n", encoding="utf-8")
        output = str(site / "blocker/feeds")
    else:
        output = "/proc/aggregator-feeds"  # no folder can be made there, even by root
    done = cli("build", "--output", output, cwd=site)
    assert done.returncode == 1
    assert advice in done.stderr
    assert "Free some space" not in done.stderr
