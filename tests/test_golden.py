"""The seeds' feeds, compared byte for byte with tests/golden/.

After an intended change of the output, regenerate with
`UPDATE_GOLDEN=1 ./run.sh test tests/test_golden.py` and review the diff.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import feedparser
import pytest
from jsonfeedcheck import check_json_feed

from aggregator.config import Settings
from aggregator.model import FeedKey
from aggregator.pipeline import Builder

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests/golden"


def files_of(folder: Path) -> dict[str, bytes]:
    """The output files, without the gzip sidecars (their bytes depend on the zlib build)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix != ".gz"
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    work = tmp_path_factory.mktemp("golden")
    shutil.copytree(ROOT / "seeds", work / "in")
    settings = Settings(
        input=work / "in",
        output=work / "out",
        state=work / "state",
        base_url="https://feeds.example.org/",
    )
    with Builder(settings) as builder:
        builder.build()
    if os.environ.get("UPDATE_GOLDEN"):
        shutil.rmtree(GOLDEN, ignore_errors=True)
        shutil.copytree(work / "out", GOLDEN)
    return files_of(work / "out")


def test_the_seeds_give_the_golden_files_byte_for_byte(built: dict[str, bytes]) -> None:
    golden = files_of(GOLDEN)
    assert sorted(built) == sorted(golden)
    for name, data in golden.items():
        assert built[name] == data, f"{name} differs from tests/golden/{name}"


def test_each_output_file_has_a_gzip_sidecar_of_its_bytes(
    built: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory
) -> None:
    out = next(tmp_path_factory.getbasetemp().glob("golden*")) / "out"
    sidecars = {str(p.relative_to(out)) for p in out.rglob("*.gz")}
    assert sidecars == {name + ".gz" for name in built}
    for name, data in built.items():
        assert gzip.decompress((out / (name + ".gz")).read_bytes()) == data
        assert (out / (name + ".gz")).stat().st_mtime_ns == (out / name).stat().st_mtime_ns


def test_the_golden_feeds_parse_back(built: dict[str, bytes]) -> None:
    feeds = [name for name in built if name.endswith(".xml")]
    assert len(feeds) == 8
    for name in feeds:
        parsed = feedparser.parse(built[name])
        assert not parsed.bozo, (name, parsed.get("bozo_exception"))
        assert parsed.version == ("rss20" if name.endswith(".rss.xml") else "atom10")
        (entry,) = parsed.entries
        guid = (
            "https://www.forbes.com/sites/forbesbusinesscouncil/2021/12/22/"
            "how-leaders-can-use-facial-recognition-technology-as-a-force-for-good/"
        )
        key = FeedKey.parse(name.removesuffix(".rss.xml").removesuffix(".atom.xml"))
        assert entry.id == key.entry_id(guid)
        assert entry.link == guid
        assert entry.published_parsed[:6] == (2021, 12, 22, 13, 0, 0)
        assert [t.term for t in entry.tags] == ["Computer Vision", "AI"]


def test_the_golden_json_feeds_are_valid_and_match_the_xml_feeds(built: dict[str, bytes]) -> None:
    feeds = sorted(name for name in built if name.endswith(".json"))
    assert feeds == [
        "all.json",
        "providers/forbes-com.json",
        "topics/ai.json",
        "topics/computer-vision.json",
    ]
    for name in feeds:
        atom = feedparser.parse(built[name.removesuffix(".json") + ".atom.xml"])
        feed = check_json_feed(
            built[name],
            url="https://feeds.example.org/" + name,
            guids=[e.id for e in atom.entries],
        )
        assert [i["date_published"] for i in feed["items"]] == ["2021-12-22T13:00:00Z"]
