"""`python -m ostinato.recsys.train RECIPE [options] [key=value ...]` is `ostinato train recsys/RECIPE ...`."""
import sys

from ostinato.core.cli import domain_train_main

if __name__ == "__main__":
    sys.exit(domain_train_main("recsys"))
