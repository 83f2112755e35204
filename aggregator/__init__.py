"""aggregator: article files in, RSS 2.0, Atom 1.0 and JSON Feed 1.1 feeds out, kept current."""

__version__ = "0.1.0"
