"""`python -m aggregator` runs the same CLI as the `aggregator` console script."""

import sys

from aggregator.cli import main

sys.exit(main())
