"""An item's text as every format carries it: its title, its summary and its body as HTML.

RSS, Atom and JSON Feed all show the same strings, so a reader sees one article the same way
whichever format it subscribed to; this module is where those strings are made.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from datetime import UTC
from functools import lru_cache

from aggregator.model import Article, RelatedLink

# As many articles as the renderer keeps entries for (`render._ENTRY_CACHE_SIZE`).
_HTML_CACHE_SIZE = 8192

# Characters XML 1.0 cannot carry at all (C0 controls but tab/newline/CR, lone surrogates,
# U+FFFE/U+FFFF): lxml refuses them and ElementTree would write a file no parser reads.
# Listed, not as the complement of the characters XML allows (the same set, checked over
# every code point by tests/test_render_entries.py): `re` compiles that complement in 58 M
# instructions (it fills a map of 65,536 characters in Python), this in 4 M, and every
# build that renders a feed imports this module.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """`text` without the characters XML cannot represent (they are never meaningful text)."""
    return _NOT_XML.sub("", text)


def item_title(article: Article) -> str:
    """The item's title; its URL when the title is blank (every format wants a title)."""
    return xml_safe(article.title).strip() or xml_safe(article.url)


def item_excerpt(article: Article) -> str:
    """The excerpt as plain text, without the characters XML cannot carry."""
    return xml_safe(article.excerpt).strip()


@lru_cache(maxsize=_HTML_CACHE_SIZE)
def item_html(article: Article) -> tuple[str | None, str | None]:
    """(`summary_html`, `content_html`) of an article, made once for every format.

    The XML entry and the JSON Feed item of one article both carry these strings (about
    20 µs to make): cached on the frozen article, which the renderer passes to both."""
    return summary_html(article), content_html(article)


def summary_html(article: Article) -> str | None:
    """The summary as HTML (RSS `description`, Atom `summary type="html"`), or None.

    The text is HTML-escaped, so `<b>new</b>` in an excerpt shows as those characters. Without
    an excerpt or related links the title stands in: an Atom entry with neither summary nor
    content makes the W3C validator warn (MissingTextualContent).
    """
    excerpt = item_excerpt(article)
    if excerpt or not article.related:
        return html.escape(excerpt or item_title(article), quote=False)
    return None


def content_html(article: Article) -> str | None:
    """The body as HTML when there are related links (the excerpt, then the links), or None."""
    if not article.related:
        return None
    return _related_html(item_excerpt(article), article.related)


def _related_html(excerpt: str, related: Iterable[RelatedLink]) -> str:
    """The item body: the (XML-safe) excerpt, then the related articles as a list of links.

    Every piece of article text is HTML-escaped (attribute values with quotes too), so no
    article can inject markup; only http(s) URLs become links, never `javascript:` and such.
    """
    lines = []
    for link in related:
        url = link.url.strip()
        title = html.escape(link.title.strip() or url, quote=False)
        if url.startswith(("https://", "http://")):
            line = f'<a href="{html.escape(url)}">{title}</a>'
        else:
            line = title
        details = []
        if link.provider and link.provider.strip():
            details.append(html.escape(link.provider.strip(), quote=False))
        if link.published_at is not None:
            details.append(link.published_at.astimezone(UTC).date().isoformat())
        if details:
            line += f" ({', '.join(details)})"
        lines.append(f"<li>{line}</li>")
    # One pass for the characters XML cannot carry, rather than one per piece.
    items = xml_safe("\n".join(lines))
    intro = f"<p>{html.escape(excerpt, quote=False)}</p>\n" if excerpt else ""
    return f"{intro}<p>Related:</p>\n<ul>\n{items}\n</ul>"


def unique(values: Iterable[str]) -> list[str]:
    """Non-empty values in order, each once (a repeated category is noise to readers)."""
    return [v for v in dict.fromkeys(values) if v]
