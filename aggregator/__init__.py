"""aggregator: article files in, RSS 2.0 and Atom 1.0 feeds out, kept current by a daemon."""

__version__ = "0.1.0"
