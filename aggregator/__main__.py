"""`python -m aggregator` runs the same CLI as the `aggregator` console script."""

import sys

from aggregator.cli import main

# The guard matters: worker processes (forkserver) import the main module again.
if __name__ == "__main__":
    sys.exit(main())
