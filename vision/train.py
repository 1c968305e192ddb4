"""`python -m ostinato.vision.train RECIPE [options] [key=value ...]` is `ostinato train vision/RECIPE ...`."""
import sys

from ostinato.core.cli import domain_train_main

if __name__ == "__main__":
    sys.exit(domain_train_main("vision"))
