"""Configuration and the command line, run as a user runs them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from articlefiles import write_article

from aggregator.cli import main
from aggregator.config import Settings, load_settings
from aggregator.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_the_shipped_config_is_valid_and_documents_every_key() -> None:
    settings = load_settings(ROOT / "config/aggregator.yaml")
    assert settings.input == Path("seeds")
    assert settings.output == Path("feeds")
    assert settings.max_items == 50
    text = (ROOT / "config/aggregator.yaml").read_text(encoding="utf-8")
    for name in Settings.__dataclass_fields__:
        key = {
            "titles": "feed_titles",
            "log_level": "level",
            "log_format": "format",
        }.get(name, name)
        assert f"{key}:" in text, f"config/aggregator.yaml does not document {key}"


def test_a_bad_config_lists_every_problem_with_its_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "base_url: ftp://nope\nmax_items: 0\nbogus: 1\npatterns: []\n"
        "logging: {level: LOUD}\ndaemon: {debounce_seconds: -1}\n"
        "feed_titles: {topic: '{oops}'}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    problems = "\n".join(caught.value.problems)
    for key in (
        "base_url",
        "max_items",
        "bogus",
        "patterns",
        "logging.level",
        "daemon.debounce_seconds",
        "feed_titles.topic",
    ):
        assert key in problems
    assert str(config) in str(caught.value)


def test_formats_and_websub_hubs_are_read_and_checked(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "formats: [JSON, rss]\nwebsub:\n  hubs: [https://hub.example.org/, "
        "'http://127.0.0.1:8080/hub', https://hub.example.org/]\n",
        encoding="utf-8",
    )
    settings = load_settings(config)
    assert [f.value for f in settings.formats] == ["rss", "json"]  # the one fixed order
    assert settings.hubs == ("https://hub.example.org/", "http://127.0.0.1:8080/hub")
    assert load_settings(tmp_path / "c.yaml", {}).formats == settings.formats
    assert [f.value for f in Settings().formats] == ["rss", "atom", "json"]
    assert Settings().hubs == ()

    config.write_text(
        "formats: []\nwebsub: {hubs: [ftp://hub.example.org/, /hub, 'http://a b/'], x: 1}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    problems = caught.value.problems
    assert sum(p.startswith("formats:") for p in problems) == 1
    assert sum(p.startswith("websub.hubs:") for p in problems) == 3
    assert any(p.startswith("websub.x:") for p in problems)
    for bad in ("formats: [rss, xml]", "formats: 3", "websub: {hubs: 3}", "websub: []"):
        config.write_text(bad + "\n", encoding="utf-8")
        with pytest.raises(ConfigError):
            load_settings(config)


def test_cli_flags_override_the_file(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("base_url: https://a.example.org/\nmax_items: 7\n", encoding="utf-8")
    settings = load_settings(config, {"base_url": "https://b.example.org/x", "input": "elsewhere"})
    assert settings.base_url == "https://b.example.org/x/"
    assert settings.input == Path("elsewhere")
    assert settings.max_items == 7


def test_bad_config_exits_2_with_the_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("max_items: lots\n", encoding="utf-8")
    assert main(["build", "--config", str(config)]) == 2
    assert "max_items" in capsys.readouterr().err


def test_build_summary_strict_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, out, state = tmp_path / "in", tmp_path / "out", tmp_path / "state"
    write_article(source, "good.txt", "https://a.example.com/1")
    (source / "bad.txt").write_text("no front matter here\n", encoding="utf-8")
    args = [
        "--input",
        str(source),
        "--output",
        str(out),
        "--state",
        str(state),
        "--base-url",
        "https://feeds.example.org/",
    ]
    assert main(["build", *args]) == 0
    captured = capsys.readouterr()
    assert "2 article files read, 1 published, 1 rejected" in captured.out
    assert "bad.txt" in captured.err
    assert main(["build", "--strict", *args]) == 1
    capsys.readouterr()
    assert main(["check", *args]) == 1
    captured = capsys.readouterr()
    assert "rejected bad.txt" in captured.out
    assert "2 article files checked: 1 published, 1 rejected" in captured.out
    (source / "bad.txt").unlink()
    assert main(["check", *args]) == 0


def test_missing_input_folder_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "build",
            "--input",
            str(tmp_path / "nope"),
            "--output",
            str(tmp_path / "o"),
            "--state",
            str(tmp_path / "s"),
        ]
    )
    assert code == 2
    assert "nope" in capsys.readouterr().err


def test_python_dash_m_builds_the_seeds_like_the_quick_start(tmp_path: Path) -> None:
    """The README's first command, minus the venv set-up: the config's seeds → feeds."""
    work = tmp_path / "work"
    shutil.copytree(ROOT / "seeds", work / "seeds")
    shutil.copytree(ROOT / "config", work / "config")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "build"],
        cwd=work,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "5 article files read, 1 published, 0 rejected" in done.stdout
    assert (work / "feeds/all.rss.xml").is_file()
    assert (work / ".aggregator/catalog.sqlite3").is_file()
