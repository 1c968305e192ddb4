"""`python -m ostinato.timeseries.train RECIPE [options] [key=value ...]` is `ostinato train timeseries/RECIPE ...`."""
import sys

from ostinato.core.cli import domain_train_main

if __name__ == "__main__":
    sys.exit(domain_train_main("timeseries"))
