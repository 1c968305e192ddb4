"""The vision domain as the core sees it (entry point ostinato.domains:vision)."""
from __future__ import annotations

from pathlib import Path

from ostinato.core.domain import Domain

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


DOMAIN = Domain(
    name="vision",
    recipes_dir=Path(__file__).parent / "recipes",
    evaluate=evaluate,
    eval_config=VisionEvalConfig,
    bench=cli.bench,
    datasets=[_mnist.MNIST_SPEC, _mnist.MMNIST_TEST_SPEC, _taxibj.TAXIBJ_SPEC, _kth.KTH_SPEC],
)
