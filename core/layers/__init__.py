"""Sequence layers of the core. Importing this package registers every layer.

All follow the core contract: ``y, state = layer(x, state=None)``, ``layer.init_state(B)``,
``y_t, state = layer.step(x_t, state)``.
"""
from . import (  # noqa: F401
    attention,
    convgru,
    convlstm,
    convmingru,
    convssm,
    fsmn,
    lru,
    memory,
    mingru,
    newton,
    rnn,
    s4d,
    s5,
    selective,
    ssd,
    ssm2d,
)
