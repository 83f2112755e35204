"""tests/corpus.py, the corpus generator the tests and benches use: deterministic for a seed,
its files read by the project's reader, the shape it promises (published share, embargoed
dates, duplicate webUrls, odd characters), and its command line."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from corpus import TOPICS, Generator, write_corpus

from aggregator.reading import read_article

SCRIPT = Path(__file__).resolve().parent / "corpus.py"


def contents(paths: list[Path]) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in paths}


def test_the_same_seed_writes_the_same_bytes_and_another_seed_other_ones(tmp_path: Path) -> None:
    first = contents(write_corpus(tmp_path / "a", 200, seed=7))
    again = contents(write_corpus(tmp_path / "b", 200, seed=7))
    other = contents(write_corpus(tmp_path / "c", 200, seed=8))
    assert first == again
    assert len(first) == 200
    assert not set(first.values()) & set(other.values())


def test_a_smaller_corpus_is_the_start_of_a_larger_one_and_batches_do_not_collide(
    tmp_path: Path,
) -> None:
    whole = contents(write_corpus(tmp_path / "whole", 300, seed=3))
    head = contents(write_corpus(tmp_path / "head", 100, seed=3))
    tail = contents(write_corpus(tmp_path / "tail", 200, seed=3, start=100))
    assert head | tail == whole
    assert not set(head) & set(tail)


def test_the_published_share_changes_nothing_but_published_and_heat() -> None:
    def lines(text: str) -> list[str]:
        return [x for x in text.splitlines() if not x.startswith(("published:", "heat:"))]

    usual, all_out = Generator(5), Generator(5, published_ratio=0.0)
    for i in range(50):
        assert lines(usual.name_and_text(i)[1]) == lines(all_out.name_and_text(i)[1])


def test_every_file_reads_with_the_projects_reader(tmp_path: Path) -> None:
    files = write_corpus(tmp_path / "c", 1000, seed=1)
    articles = [read_article(p, p.name) for p in files]
    published = sum(a.published for a in articles)
    assert 640 < published < 760  # 70 %
    assert len({a.url for a in articles}) == 1000  # no duplicates unless asked for
    assert all(a.published_at is not None and a.published_at.year < 2022 for a in articles)
    topics = Counter(t for a in articles for t in a.topics)
    assert topics.most_common(1)[0][0] == TOPICS[0]
    assert len(topics) > 30
    providers = {(a.provider.name, a.provider.domain) for a in articles if a.provider}
    assert len(providers) > 150
    names = Counter(name for name, _ in providers)
    assert max(names.values()) > 1  # one display name, two providers: as in real data
    odd = [t for t in (a.title for a in articles) if not t.isascii() or set(t) & set('"\\&<')]
    assert 20 < len(odd) < 300
    assert any(a.images for a in articles)
    assert any(a.related for a in articles)


def test_embargoed_dates_and_duplicates_when_asked_for(tmp_path: Path) -> None:
    files = write_corpus(tmp_path / "c", 600, seed=2, embargoed=0.1, duplicates=0.1, hugo=True)
    assert all(p.suffix == ".md" for p in files)
    articles = [read_article(p, p.name) for p in files]
    embargo = datetime(2100, 1, 1, tzinfo=UTC)
    late = [a for a in articles if a.published_at is not None and a.published_at >= embargo]
    assert 30 < len(late) < 90
    assert all(a.published for a in late)
    urls = Counter(a.url for a in articles)
    repeated = sum(n - 1 for n in urls.values())
    assert 30 < repeated < 90
    generator = Generator(2, duplicates=0.1)
    for i in range(600):
        k = generator.original_of(i)
        assert k <= i
        assert not generator.is_duplicate(k)
        assert articles[k].url == articles[i].url
        assert k == i or generator.is_duplicate(i)
    assert "\nproviders:\n  - " in files[0].read_text(encoding="utf-8")


def test_the_command_line_writes_what_the_function_writes(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(SCRIPT), str(tmp_path / "cli"), *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    done = run("--count", "30", "--seed", "4", "--start-index", "10", "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    written = sorted((tmp_path / "cli").iterdir())
    assert contents(written) == contents(write_corpus(tmp_path / "api", 30, seed=4, start=10))
    again = run("--count", "5", "--seed", "4", "--start-index", "12")
    assert again.returncode == 2
    assert "already holds 5 article files" in again.stderr
    forced = run("--count", "5", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "wrote 5 article files" in forced.stderr
    assert len(list((tmp_path / "cli").iterdir())) == 5


def test_ratios_outside_zero_to_one_are_refused() -> None:
    with pytest.raises(ValueError, match="embargoed must be between 0 and 1"):
        Generator(1, embargoed=1.5)
