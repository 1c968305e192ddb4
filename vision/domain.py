"""The vision domain as the core sees it (entry point ostinato.domains:vision)."""
from __future__ import annotations

from ostinato.core.domain import declare

from . import cli
from .data import kth as _kth  # noqa: F401  (registers datasets)
from .data import mnist as _mnist
from .data import synthetic as _synthetic  # noqa: F401
from .data import taxibj as _taxibj
from .data import video as _video  # noqa: F401
from .evaluate import VisionEvalConfig, evaluate
from .models import convlstm as _convlstm  # noqa: F401  (registers models)
from .models import convs5 as _convs5  # noqa: F401
from .models import pfgnet as _pfgnet  # noqa: F401


DOMAIN = declare("vision", __file__, evaluate, VisionEvalConfig, cli,
                 datasets=[_mnist.MNIST_SPEC, _mnist.MMNIST_TEST_SPEC, _taxibj.TAXIBJ_SPEC, _kth.KTH_SPEC])
