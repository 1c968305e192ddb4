"""Sequence layers of the core. Importing this package registers every layer.

All follow the core contract: ``y, state = layer(x, state=None)``, ``layer.init_state(B)``,
``y_t, state = layer.step(x_t, state)``.
"""
from . import attention, convlstm, convssm, fsmn, memory, newton, rnn, selective, ssm2d  # noqa: F401
