"""The control domain as the core sees it (entry point ostinato.domains:control).

Its verbs (``ostinato control setup-render|collect``, ``ostinato bench control``) are in ``cli.py``.
"""
from __future__ import annotations

from ostinato.core.domain import declare

from . import cli
from .data import episodic as _episodic  # noqa: F401  (registers control_demos)
from .envs import list_envs
from .evaluate import ControlEvalConfig, evaluate
from .models import muvla as _muvla  # noqa: F401  (registers muvla*)

DOMAIN = declare("control", __file__, evaluate, ControlEvalConfig, cli,
                 listings={"envs": list_envs},
                 eval_needs_data=False)  # rollouts: the env settings are in the checkpoint (DataBundle.inference)
