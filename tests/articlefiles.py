"""Writing article files for tests: real YAML front matter files on disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

SECRET = "SECRET-blob-that-must-never-leak-0123456789"


def article_text(
    url: str,
    title: str = "A title",
    *,
    published: Any = True,
    date: str | None = "2021-12-22T13:00:00Z",
    topics: list[str] | None = None,
    provider: dict[str, Any] | str | None = None,
    excerpt: str = "An excerpt.",
    **extra: Any,
) -> str:
    """An article file's text, as the content teams write them."""
    data: dict[str, Any] = {
        "category": "news",
        "title": title,
        "excerpt": excerpt,
        "webUrl": url,
        "type": "article",
        "published": published,
        "provider": provider
        if provider is not None
        else {"name": "Forbes", "domain": "forbes.com"},
        "topics": topics if topics is not None else ["AI"],
        "images": [{"url": "https://img.example.com/a.jpg", "width": 1200, "height": 799}],
        "secured": SECRET,
    }
    if date is not None:
        data["publishedDateTime"] = date
    data.update(extra)
    return "---\n" + yaml.safe_dump(data, allow_unicode=True, sort_keys=False) + "---\n"


def write_article(folder: Path, name: str, url: str, **fields: Any) -> Path:
    """Write an article file and give it an mtime newer than any before it.

    Builds decide what to re-read by size and mtime; two writes within one clock tick
    could otherwise look alike.
    """
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(article_text(url, **fields), encoding="utf-8")
    bump_mtime(path)
    return path


_clock = [1_700_000_000_000_000_000]


def bump_mtime(path: Path) -> None:
    """Set a strictly increasing mtime, so 'newest file' and change detection are exact."""
    _clock[0] += 1_000_000_000
    os.utime(path, ns=(_clock[0], _clock[0]))
