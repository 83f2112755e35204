#!/usr/bin/env python3
"""The project's corpus generator: deterministic, realistic article files for tests and benches.

Each file is one YAML document between two `---` lines, with the fields real article files
carry: category, title, excerpt, publishedDateTime, originalUrl, webUrl, ampWebUrl,
cdnAmpWebUrl, type, quality, heat, published, provider {name, domain, images}, topics, images,
related [...] and secured. Titles, excerpts and URLs are double-quoted; provider and topic
names are plain scalars when YAML reads them as strings, quoted otherwise; dates are unquoted
(`2021-12-22T13:00:00Z`). Keys an article has no value for are left out, as in real files.

The shape, all drawn from a seeded generator:

* 40 topics and 260 providers, both with Zipf-like popularity; 1 to 6 topics per article.
  Some generated providers share a display name (`Data Brief` at databrief.com and at
  databrief.co), as real ones do.
* titles of 25-120 characters and excerpts of 60-350, about 8 % with characters a feed writer
  must escape or encode (`"`, `\\`, `&`, `<`, curly quotes, accents, Cyrillic, CJK, emoji).
* 0-2 images and 0-8 related items per article; dates spread over 2019-2021, minute steps.
* about 70 % `published: true` (`published_ratio`).
* opt-in: `embargoed` (a share of published articles dated after `embargo_from`, 2100-01-01 by
  default, so they stay embargoed), and `duplicates` (a share of files that repeat the webUrl
  of an earlier article, some with a retouched title: a re-post the catalog must resolve).

Determinism: file `i` depends only on the seed, `i` and the options, and never on the clock or
the machine; a corpus of 1,000 is the first 1,000 files of one of 100,000 with the same seed,
and `start` makes further batches that never collide with the first. Standard library only.

Command line (benches)::

    python tests/corpus.py DEST --count N [--seed S] [--start-index I] [--quiet]
        [--published-ratio R] [--embargoed R] [--duplicates R] [--hugo] [--force]

Function API (tests, which have `tests/` on `sys.path`)::

    from corpus import Generator, write_corpus
    files = write_corpus(tmp_path / "corpus", 1000, seed=1)
"""

from __future__ import annotations

import argparse
import base64
import bisect
import hashlib
import itertools
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

TOPICS: tuple[str, ...] = (
    "AI", "Machine Learning", "Cloud Computing", "Deep Learning", "Cybersecurity", "Startups",
    "Data Science", "Robotics", "Computer Vision", "Natural Language Processing", "Big Data",
    "Healthcare", "Internet of Things", "Blockchain", "Autonomous Vehicles", "Fintech", "Ethics",
    "Semiconductors", "Quantum Computing", "Privacy", "5G", "Open Source", "Edge Computing",
    "Energy", "Chatbots", "Climate Tech", "Regulation", "Drones", "Smart Cities", "Education",
    "Augmented Reality", "Biotech", "Gaming", "Space", "E-commerce", "DevOps", "Wearables",
    "Speech Recognition", "Virtual Reality", "Reinforcement Learning",
)
"""Topic names, most popular first."""

OUTLETS: tuple[tuple[str, str], ...] = (
    ("Axios", "axios.com"), ("Wired", "wired.com"), ("Vox", "vox.com"),
    ("Politico", "politico.com"), ("Forbes", "forbes.com"), ("TechCrunch", "techcrunch.com"),
    ("VentureBeat", "venturebeat.com"), ("ZDNet", "zdnet.com"), ("The Verge", "theverge.com"),
    ("Reuters", "reuters.com"), ("Bloomberg", "bloomberg.com"), ("CNBC", "cnbc.com"),
    ("BBC News", "bbc.co.uk"), ("The Guardian", "theguardian.com"), ("Engadget", "engadget.com"),
    ("Ars Technica", "arstechnica.com"), ("MIT Technology Review", "technologyreview.com"),
    ("Fast Company", "fastcompany.com"), ("Financial Times", "ft.com"), ("Quartz", "qz.com"),
    ("Fortune", "fortune.com"), ("Harvard Business Review", "hbr.org"), ("Nature", "nature.com"),
    ("IEEE Spectrum", "spectrum.ieee.org"), ("The Register", "theregister.com"),
    ("InfoWorld", "infoworld.com"), ("Computerworld", "computerworld.com"),
    ("TechRepublic", "techrepublic.com"), ("Phys.org", "phys.org"), ("Gizmodo", "gizmodo.com"),
    ("The Next Web", "thenextweb.com"), ("Mashable", "mashable.com"), ("CNN", "cnn.com"),
    ("Los Angeles Times", "latimes.com"), ("Washington Post", "washingtonpost.com"),
    ("South China Morning Post", "scmp.com"), ("Yahoo Finance", "finance.yahoo.com"),
    ("KDnuggets", "kdnuggets.com"), ("Datanami", "datanami.com"), ("heise online", "heise.de"),
    ("Süddeutsche Zeitung", "sueddeutsche.de"), ("Le Monde Informatique", "lemondeinformatique.fr"),
    ("O'Reilly Radar", "oreilly.com"), ("AT&T Newsroom", "about.att.com"),
)
"""Known outlets (name, domain); generated local papers and blogs fill up to PROVIDERS."""

PROVIDERS = 260
TOWNS = (
    "Ashford", "Bayview", "Cedar Falls", "Dunmore", "Elmwood", "Fairhaven", "Glenrock",
    "Harbor City", "Ironwood", "Juniper", "Kingsport", "Lakeside", "Millbrook", "Northfield",
    "Oakridge", "Pinecrest", "Queensbury", "Redwood", "Stonebridge", "Tidewater", "Westbury",
)
PAPERS = ("Herald", "Gazette", "Tribune", "Courier", "Observer", "Ledger", "Daily", "Post")
BLOG_HEADS = ("Data", "Byte", "Neural", "Signal", "Circuit", "Vector", "Quantum", "Cloud", "Bot")
BLOG_TAILS = ("Brief", "Wire", "Digest", "Insider", "Pulse", "Labs", "Weekly", "Report", "Hub")
BLOG_TLDS = (".com", ".co", ".io", ".ai", ".net")

_VOCABULARY = """
    the a of to in for on with from by as at into over after before under against without new
    how why what when who this that its their our more most best first next big small global
    local public early late companies startup researchers engineers leaders investors users
    customers developers regulators lawmakers workers doctors patients cities schools banks
    hospitals retailers industry market world technology system platform model models network
    algorithm data software chip chips sensors cameras robot drones app service cloud device
    vehicles factory supply chain security privacy safety risk bias rules law policy report study
    survey research paper breakthrough framework strategy deal funding round acquisition launch
    release update builds trains deploys raises improves reduces detects predicts automates
    scales adopts bans warns says could would should can will may must needs wants shows makes
    takes finds growth demand cost costs prices revenue billion million percent year quarter
    decade wave recognition learning intelligence automation analytics vision language speech
    translation search fraud forecasting diagnosis imaging finance retail manufacturing
    logistics energy climate agriculture transport defense media jobs skills talent hiring
    accuracy performance efficiency speed memory storage compute open-source real-time
    end-to-end large-scale low-cost R&D Q&A M&A
"""
VOCABULARY = tuple(_VOCABULARY.split())
SPICE = (
    "\u201cAI\u201d", "it\u2019s", '"smart"', "na\u00efve", "Z\u00fcrich", "S\u00e3o Paulo",
    "Krak\u00f3w", "\u2026", "<b>beta</b>", "C:\\data", "\u2014", "100%", "#1", "A&B",
    "\u041c\u043e\u0441\u043a\u0432\u0430", "\u6771\u4eac", "\U0001f680", "\u00bd", "x\u00b2",
    "O\u2019Neil", "caf\u00e9 & bar", "5 < 7 > 3", "'single'",
)
"""Tokens that exercise escaping and Unicode (quotes, backslash, markup, scripts, emoji)."""
TITLE_ENDS = (" | Opinion", " - Analysis", " (Video)", ": Report", "?", "!")
IMAGE_SIZES = ((1200, 630), (1200, 675), (1920, 1080), (800, 450), (640, 480), (300, 250))
SECTIONS = ("news", "tech", "business", "science", "story", "world", "opinion")

START = 1_546_300_800  # 2019-01-01T00:00:00Z
SPAN = 1_096 * 86_400  # to 2022-01-01, 2020's leap day included
EMBARGO_FROM = 4_102_444_800  # 2100-01-01T00:00:00Z
EMBARGO_SPAN = 30 * 86_400
DUPLICATE_REACH = 40
"""A duplicate repeats one of the DUPLICATE_REACH articles before it."""

_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9 .,'&()+-]*[A-Za-z0-9.)]")
_YAML11_WORDS = frozenset(("y", "yes", "n", "no", "true", "false", "on", "off", "null"))
_SLUG = re.compile(r"[^a-z0-9]+")
_OWN_NAME = re.compile(r"^(\d+)_[0-9a-f]{16}\.(txt|md)$")


def quoted(text: str) -> str:
    """`text` as a YAML double-quoted scalar (the vocabulary has no control characters)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def plain(text: str) -> str:
    """`text` unquoted where YAML 1.1 reads it back as that same string, else quoted."""
    if _PLAIN.fullmatch(text) and text.lower() not in _YAML11_WORDS and ": " not in text:
        return text
    return quoted(text)


def stamp(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(epoch))


def slugify(text: str) -> str:
    return _SLUG.sub("-", text.lower()).strip("-")[:80].rstrip("-") or "article"


@dataclass(frozen=True)
class Provider:
    name: str
    domain: str
    host: str
    section: str
    url_style: int
    amp_share: float
    logo: bool

    def url(self, slug: str, epoch: int, uid: int) -> str:
        day = time.gmtime(epoch)
        if self.url_style == 0:
            return f"https://{self.host}/{day.tm_year}/{day.tm_mon:02d}/{day.tm_mday:02d}/{slug}/"
        if self.url_style == 1:
            return f"https://{self.host}/{self.section}/{slug}-{uid}.html"
        return f"https://{self.host}/{self.section}/{uid}/{slug}"

    def amp(self, url: str) -> tuple[str, str]:
        """(ampWebUrl, cdnAmpWebUrl) of an article URL."""
        amp = url + "amp/" if url.endswith("/") else url + "?amp=1"
        rest = amp.split("://", 1)[1]
        host, _, path = rest.partition("/")
        cdn = host.replace("-", "--").replace(".", "-")
        return amp, f"https://{cdn}.cdn.ampproject.org/c/s/{host}/{path}"


def providers(seed: int) -> list[Provider]:
    """PROVIDERS providers for `seed`, most popular first."""
    rng = random.Random(f"corpus providers {seed}")
    pairs = list(OUTLETS)
    rng.shuffle(pairs)
    domains = {domain for _, domain in pairs}
    while len(pairs) < PROVIDERS:
        if rng.random() < 0.5:
            town, paper = rng.choice(TOWNS), rng.choice(PAPERS)
            name = f"The {town} {paper}" if rng.random() < 0.4 else f"{town} {paper}"
            domain = slugify(town + paper).replace("-", "") + rng.choice((".com", ".net"))
        else:
            name = f"{rng.choice(BLOG_HEADS)} {rng.choice(BLOG_TAILS)}"
            domain = name.lower().replace(" ", "") + rng.choice(BLOG_TLDS)
        if domain not in domains:  # the same name at another domain is kept: real, and hard
            domains.add(domain)
            pairs.append((name, domain))
    made = []
    for name, domain in pairs:
        host = domain if domain.count(".") > 1 or rng.random() < 0.3 else "www." + domain
        made.append(
            Provider(
                name, domain, host, rng.choice(SECTIONS), rng.randrange(3),
                rng.choice((0.0, 0.0, 0.5, 0.9)), rng.random() < 0.35,
            )
        )
    return made


def zipf(count: int) -> list[float]:
    """Cumulative weights 1/rank for ranks 1..count."""
    return list(itertools.accumulate(1.0 / rank for rank in range(1, count + 1)))


class Generator:
    """The text of article file `i` for a seed and options; `name_and_text(i)` is all it does."""

    def __init__(
        self,
        seed: int = 1,
        *,
        published_ratio: float = 0.7,
        embargoed: float = 0.0,
        duplicates: float = 0.0,
        embargo_from: int = EMBARGO_FROM,
        hugo: bool = False,
    ) -> None:
        for label, ratio in (("published_ratio", published_ratio), ("embargoed", embargoed),
                             ("duplicates", duplicates)):
            if not 0.0 <= ratio <= 1.0:
                raise ValueError(f"{label} must be between 0 and 1, got {ratio}")
        self.seed = seed
        self.published_ratio = published_ratio
        self.embargoed = embargoed
        self.duplicates = duplicates
        self.embargo_from = embargo_from
        self.hugo = hugo
        self.providers = providers(seed)
        self._provider_weights = zipf(len(self.providers))
        self._topic_weights = zipf(len(TOPICS))

    # --- drawing --------------------------------------------------------------------------

    def _chance(self, kind: str, i: int) -> float:
        """A uniform number in [0, 1) for (`kind`, seed, `i`), independent of every other draw."""
        digest = hashlib.blake2b(f"{kind}:{self.seed}:{i}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def is_duplicate(self, i: int) -> bool:
        return i > 0 and self._chance("duplicate", i) < self.duplicates

    def original_of(self, i: int) -> int:
        """The article whose webUrl file `i` carries: `i` itself unless it is a duplicate."""
        if not self.is_duplicate(i):
            return i
        k = max(0, i - 1 - int(self._chance("reach", i) * DUPLICATE_REACH))
        while self.is_duplicate(k):
            k -= 1
        return k

    def _provider(self, rng: random.Random) -> Provider:
        weights = self._provider_weights
        return self.providers[bisect.bisect(weights, rng.random() * weights[-1])]

    def _topics(self, rng: random.Random) -> tuple[str, ...]:
        wanted = rng.choices(range(1, 7), weights=(25, 38, 22, 10, 4, 1))[0]
        weights, chosen = self._topic_weights, list[str]()
        while len(chosen) < wanted:
            topic = TOPICS[bisect.bisect(weights, rng.random() * weights[-1])]
            if topic not in chosen:
                chosen.append(topic)
        return tuple(chosen)

    @staticmethod
    def _words(rng: random.Random, length: int, topic: str | None, capitalise: bool) -> str:
        words = rng.choices(VOCABULARY, k=length // 6 + 2)
        if topic is not None:
            words.insert(rng.randrange(len(words)), topic)
        if rng.random() < 0.08:
            words.insert(rng.randrange(len(words)), rng.choice(SPICE))
        words = [w[:1].upper() + w[1:] for w in words] if capitalise else words
        text = " ".join(words)
        text = text[:1].upper() + text[1:]
        if len(text) > length:
            cut = text.rfind(" ", 0, length)
            text = text[: cut if cut > 10 else length].rstrip()
        return text

    def _title(self, rng: random.Random, topic: str) -> str:
        length = max(25, min(120, int(rng.gauss(68, 20))))
        text = self._words(rng, length, topic if rng.random() < 0.6 else None, rng.random() < 0.5)
        return text + rng.choice(TITLE_ENDS) if rng.random() < 0.15 else text

    def _excerpt(self, rng: random.Random, topic: str | None) -> str:
        text = self._words(rng, max(60, min(350, int(rng.gauss(180, 55)))), topic, False)
        return text + rng.choice((".", ".", ".", " ...", ""))

    @staticmethod
    def _image(rng: random.Random, provider: Provider, epoch: int, indent: str) -> list[str]:
        day, (width, height) = time.gmtime(epoch), rng.choice(IMAGE_SIZES)
        name = f"{rng.getrandbits(64):016x}.{rng.choice(('jpg', 'jpg', 'png', 'webp'))}"
        url = f"https://cdn.{provider.domain}/{day.tm_year}/{day.tm_mon:02d}/{name}"
        url += "?w=1200&q=80" if rng.random() < 0.2 else ""
        return [f"{indent}- url: {quoted(url)}", f"{indent}  width: {width}",
                f"{indent}  height: {height}", f"{indent}  isCached: true"]

    @staticmethod
    def _provider_lines(provider: Provider, indent: str, logo: bool) -> list[str]:
        lines = [f"{indent}provider:", f"{indent}  name: {plain(provider.name)}"]
        lines.append(f"{indent}  domain: {provider.domain}")
        if logo and provider.logo:
            url = f"https://logos.example.org/{provider.domain}-50x50.png"
            lines += [f"{indent}  images:", f"{indent}    - url: {quoted(url)}"]
            lines += [f"{indent}      width: 50", f"{indent}      height: 50"]
        return lines

    def name_and_text(self, i: int, width: int = 6) -> tuple[str, str]:
        """The file name and the text of article file `i`. Every draw is made whatever the
        options, so the published ratio or the embargoed share change nothing else."""
        k = self.original_of(i)  # a duplicate is its original, re-posted
        rng = random.Random((self.seed << 40) + k)
        provider, topics = self._provider(rng), self._topics(rng)
        when = START + rng.randrange(SPAN) // 60 * 60
        title = self._title(rng, topics[0])
        excerpt = self._excerpt(rng, topics[0] if rng.random() < 0.5 else None)
        url = provider.url(slugify(title), when, 1_000_000 + k)
        published = rng.random() < self.published_ratio
        embargo = self.embargo_from + rng.randrange(EMBARGO_SPAN) // 60 * 60
        if self._chance("embargo", k) < self.embargoed:
            when, published = embargo, True
        if k != i:  # an hour to a day later, half of them with a retouched title
            later = random.Random(f"repost {self.seed} {i}")
            when += later.randrange(3_600, 86_400) // 60 * 60
            title += " (updated)" if later.random() < 0.5 else ""
        opinion, original, amp = rng.random() < 0.03, rng.random() < 0.6, rng.random()
        video, quality = rng.random() < 0.04, int(rng.triangular(10, 140, 40))
        heat_roll, heat = rng.random(), rng.randrange(1, 400)
        out = ["---", "category: " + ("opinion" if opinion else "news")]
        out += [f"title: {quoted(title)}", f"excerpt: {quoted(excerpt)}"]
        out.append(f"publishedDateTime: {stamp(when)}")
        out += [f"originalUrl: {quoted(url)}"] if original else []
        out.append(f"webUrl: {quoted(url)}")
        if amp < provider.amp_share:
            amp_url, cdn_url = provider.amp(url)
            out += [f"ampWebUrl: {quoted(amp_url)}", f"cdnAmpWebUrl: {quoted(cdn_url)}"]
        out += ["type: " + ("video" if video else "article"), f"quality: {quality}"]
        out.append(f"heat: {heat if published and heat_roll < 0.5 else -1}")
        out += [f"published: {'true' if published else 'false'}", ""]
        out += self._provider_lines(provider, "", logo=True)
        if self.hugo:  # Hugo's taxonomies are top-level keys only
            out += ["", "providers:", f"  - {plain(provider.name)}"]
        out += ["", "topics:", *(f"  - {plain(topic)}" for topic in topics), ""]
        images = rng.choices((0, 1, 2), (15, 75, 10))[0]
        if images:
            out.append("images:")
            for _ in range(images):
                out += self._image(rng, provider, when, "  ")
            out.append("")
        related = rng.choices(range(9), weights=(10, 9, 12, 14, 14, 12, 11, 9, 9))[0]
        out += ["related:"] if related else []
        for _ in range(related):
            other = self._provider(rng)
            other_when = when + rng.randrange(-5 * 86_400, 4 * 86_400) // 60 * 60
            other_title = self._title(rng, topics[0])
            other_url = other.url(slugify(other_title), other_when, rng.randrange(10**7, 10**8))
            out += [f"  - title: {quoted(other_title)}"]
            out.append(f"    excerpt: {quoted(self._excerpt(rng, None))}")
            out.append(f"    publishedDateTime: {stamp(other_when)}")
            out += [f"    webUrl: {quoted(other_url)}", "    type: article"]
            out += self._provider_lines(other, "    ", logo=False)
            out.append(f"    quality: {int(rng.triangular(10, 140, 35))}")
            if rng.random() < 0.85:
                out += ["    images:", *self._image(rng, other, other_when, "      ")]
        out += [""] if related else []
        secret = base64.b64encode(rng.randbytes(rng.randrange(192, 420))).decode()
        salt = base64.b64encode(rng.randbytes(16)).decode()
        out += [f'secured: "{secret};{salt}"', "---", "", ""]
        digest = hashlib.blake2b(f"{url}#{i}".encode(), digest_size=8).hexdigest()
        return f"{i:0{width}d}_{digest}{'.md' if self.hugo else '.txt'}", "\n".join(out)


def write_corpus(
    dest: Path,
    count: int,
    *,
    seed: int = 1,
    start: int = 0,
    published_ratio: float = 0.7,
    embargoed: float = 0.0,
    duplicates: float = 0.0,
    embargo_from: int = EMBARGO_FROM,
    hugo: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[Path]:
    """Write article files `start` .. `start + count - 1` into `dest` (made if missing); return
    their paths in order. A file of the same name is overwritten."""
    generator = Generator(
        seed, published_ratio=published_ratio, embargoed=embargoed, duplicates=duplicates,
        embargo_from=embargo_from, hugo=hugo,
    )
    dest.mkdir(parents=True, exist_ok=True)
    width = max(6, len(str(start + count - 1)))
    paths = []
    for n, i in enumerate(range(start, start + count), 1):
        name, text = generator.name_and_text(i, width)
        path = dest / name
        path.write_bytes(text.encode("utf-8"))
        paths.append(path)
        if progress is not None and n % 10_000 == 0:
            progress(n)
    return paths


def _share(value: str) -> float:
    share = float(value)
    if not 0.0 <= share <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return share


def _count(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tests/corpus.py",
        description="Write deterministic, realistic article files for tests and benchmarks.",
        epilog="File i depends only on the seed, i and the options: a smaller corpus is the "
        "start of a larger one, and --start-index adds batches that do not collide.",
    )
    add = parser.add_argument
    add("dest", type=Path, help="folder to write into (made if missing)")
    add("--count", "-n", type=_count, required=True, help="files to write")
    add("--seed", type=_count, default=1, help="default: 1")
    add("--start-index", type=_count, default=0, help="the first file's index (default: 0)")
    add("--published-ratio", type=_share, default=0.7, help="default: 0.7")
    add("--embargoed", type=_share, default=0.0, help="share dated after 2100-01-01 (0)")
    add("--duplicates", type=_share, default=0.0, help="share repeating a webUrl (0)")
    add("--hugo", action="store_true", help="Hugo's form: .md, a top-level providers list")
    add("--force", action="store_true", help="first delete the article files in DEST")
    add("--quiet", "-q", action="store_true", help="print nothing")
    args = parser.parse_args(argv)
    dest: Path = args.dest
    dest.mkdir(parents=True, exist_ok=True)
    own = [p for p in dest.iterdir() if _OWN_NAME.match(p.name)]
    if args.force:
        for path in own:
            path.unlink()
    else:
        low, high = args.start_index, args.start_index + args.count
        clash = [p for p in own if low <= int(p.name.split("_", 1)[0]) < high]
        if clash:
            print(f"tests/corpus.py: {dest} already holds {len(clash)} article files numbered "
                  f"{low} to {high - 1}; --force replaces them, --start-index adds a batch",
                  file=sys.stderr)
            return 2

    def progress(n: int) -> None:
        if not args.quiet:
            print(f"  {n} articles ...", file=sys.stderr, flush=True)

    started = time.perf_counter()
    paths = write_corpus(
        dest, args.count, seed=args.seed, start=args.start_index,
        published_ratio=args.published_ratio, embargoed=args.embargoed,
        duplicates=args.duplicates, hugo=args.hugo, progress=progress,
    )
    if not args.quiet:
        size = sum(p.stat().st_size for p in paths)
        print(f"wrote {len(paths)} article files ({size / 1e6:.1f} MB) to {dest} in "
              f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
