"""publish.gzip_bytes: the gzip sidecars' bytes, deflated by zlib-ng when installed, else zlib.

Either way the same input gives the same bytes, and they decompress to the input; with zlib
they are exactly what `gzip.compress` writes with the same settings.
"""

from __future__ import annotations

import gzip
import importlib.util
import zlib

import pytest

from aggregator.output import gzip_bytes
from aggregator.output.publish import _deflater, gzip_with

SAMPLES = [
    b"",
    b"<rss>one</rss>",
    "caf\u00e9 \U0001f600 ".encode() * 5000,
    bytes(range(256)) * 700,  # over 64 kB, little to gain
]


@pytest.mark.parametrize("data", SAMPLES, ids=["empty", "small", "text", "binary"])
def test_with_zlib_the_bytes_are_gzip_compress(data: bytes) -> None:
    assert gzip_with(data, zlib.compress, zlib.crc32) == gzip.compress(
        data, compresslevel=6, mtime=0
    )


@pytest.mark.parametrize("data", SAMPLES, ids=["empty", "small", "text", "binary"])
def test_the_sidecar_decompresses_to_the_data_and_is_stable(data: bytes) -> None:
    zipped = gzip_bytes(data)
    assert gzip.decompress(zipped) == data
    assert zipped == gzip_bytes(bytes(data))
    assert zipped[:10] == gzip.compress(b"", compresslevel=6, mtime=0)[:10]


def test_zlib_ng_deflates_when_installed() -> None:
    # The locks pin zlib-ng: an install from them compresses with it.
    assert importlib.util.find_spec("zlib_ng") is not None
    from zlib_ng import zlib_ng

    assert _deflater() == (zlib_ng.compress, zlib_ng.crc32)
