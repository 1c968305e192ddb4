"""ConvLSTM video predictor, OpenSTL's ConvLSTM baseline (Shi et al. 2015; OpenSTL ConvLSTM_Model).

Frames are cut into ``patch_size`` x ``patch_size`` patches stacked as channels
(64x64x1 -> 16x16x16), run through a stack of ``ostinato.core`` ConvLSTM layers (4 x 128
hidden, 5x5 kernels, no bias), and a 1x1 conv (no bias) reads out the next frame's patches.
The model predicts frame t+1 from frame t over the whole sequence, T_in + T_out - 1 steps;
the loss is the MSE against frames 1..T-1 (reconstructions of input frames included), as
OpenSTL. During training, a target frame fed back as input is the true frame with probability
``eta`` and the model's own prediction otherwise (scheduled sampling; one coin per sample and
frame); ``eta`` starts at 1 and falls by 2e-5 per training step to 0 at step 50k. At test time
the predictions are always fed back.

Differences from OpenSTL's code, none of which changes the function computed:
- OpenSTL's cell computes the gates with separate convs over x and h (no bias); the core cell
  uses one conv over [x, h] (the same linear map). Its two halves are initialised like
  OpenSTL's two convs (PyTorch's default init with their own fan-ins).
- Patch channels are in ``pixel_unshuffle`` order (channel, row, col) instead of OpenSTL's
  (row, col, channel): a fixed permutation of input/output channels.
- OpenSTL's cell also defines ``conv_o`` and ``conv_last`` layers it never uses; they make its
  reported 15.0M parameters. The computed model has 11.7M (counted here).
- Reverse scheduled sampling (PredRNN-v2's option, off in OpenSTL's ConvLSTM config) is not
  implemented.

Cell slot (``model.cell``, see ``cells.py``): another core spatial recurrence (``convgru``,
``convmingru``, ``convs5``, or ``convlstm`` with its own config) in place of the ConvLSTM stack,
built with ``d_hidden`` and ``n_layers`` and stepped the same way (a 1x1 conv first maps the
patch channels to ``d_hidden`` for ConvS5, whose input and output widths are one, and for
residual stacks).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ostinato.core.config import variant
from ostinato.core.errors import ConfigError
from ostinato.core.layers.convlstm import ConvLSTM, ConvLSTMConfig
from ostinato.core.registry import register_variant

from .cells import CellConfig, build_cell


@dataclass
class ConvLSTMVPConfig:
    in_frames: int = 10
    out_frames: int = 10
    channels: int = 1
    height: int = 64
    width: int = 64
    patch_size: int = 4
    d_hidden: int = 128
    n_layers: int = 4
    kernel_size: int = 5
    scheduled_sampling: bool = True
    ss_start: float = 1.0  # eta at step 0
    ss_rate: float = 2e-5  # eta decrease per training step
    ss_stop_step: int = 50000  # eta = 0 from here on
    # the cell slot (models/cells.py): another core spatial recurrence in place of the ConvLSTM
    # stack, with these widths and depth (kernel_size is then the cell's own); None: ConvLSTM
    cell: Optional[CellConfig] = None

    def validate(self) -> None:
        if self.height % self.patch_size or self.width % self.patch_size:
            raise ConfigError(f"model.patch_size={self.patch_size} must divide height {self.height} and width {self.width}")
        if min(self.in_frames, self.out_frames, self.channels, self.d_hidden, self.n_layers) < 1:
            raise ConfigError("model: in_frames, out_frames, channels, d_hidden and n_layers must be >= 1")


def openstl_init_(conv: nn.Conv2d, d_input: int) -> None:
    """Init the [x, h] gate conv like OpenSTL's separate conv_x / conv_h (PyTorch defaults)."""
    with torch.no_grad():
        for sl in (slice(0, d_input), slice(d_input, conv.in_channels)):
            w = conv.weight[:, sl]
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))  # nn.Conv2d's default, fan_in of this half


class ConvLSTMPredictor(nn.Module):
    """``model(frames_in, n_out) -> frames_out`` on (B, T, C, H, W)."""

    def __init__(self, cfg: ConvLSTMVPConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        p = cfg.patch_size
        d_in = cfg.channels * p * p
        if cfg.cell is None:
            self.rnn = ConvLSTM(ConvLSTMConfig(d_input=d_in, d_hidden=cfg.d_hidden, kernel_size=cfg.kernel_size,
                                               n_layers=cfg.n_layers, bias=False, init="torch"))
            for i, cell in enumerate(self.rnn.layers):
                openstl_init_(cell.conv, d_in if i == 0 else cfg.d_hidden)
        else:
            self.rnn = build_cell(cfg.cell, d_in, cfg.d_hidden, cfg.n_layers)  # (B, C p p) -> (B, d_hidden) per step
        self.readout = nn.Conv2d(cfg.d_hidden, d_in, 1, bias=False)
        self.register_buffer("train_step", torch.zeros((), dtype=torch.long))  # drives scheduled sampling

    def eta(self) -> float:
        c = self.cfg
        if not c.scheduled_sampling:
            return 0.0
        s = int(self.train_step)
        return 0.0 if s >= c.ss_stop_step else max(0.0, c.ss_start - c.ss_rate * (s + 1))

    def rollout(self, frames: torch.Tensor, n_in: int, n_out: int, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Next-frame predictions for steps 1..n_in+n_out-1 -> (B, n_in + n_out - 1, C, H, W).

        ``frames``: (B, >= n_in, C, H, W). Inputs are the true frames for t < n_in; after that the
        previous prediction, or the true frame where ``mask`` (B, n_out - 1) is 1.
        """
        p = self.cfg.patch_size
        x = F.pixel_unshuffle(frames.flatten(0, 1), p).unflatten(0, frames.shape[:2])  # (B, T, C p p, H/p, W/p)
        state, outs, gen = None, [], None
        for t in range(n_in + n_out - 1):
            if t < n_in:
                net = x[:, t]
            elif mask is not None:
                m = mask[:, t - n_in, None, None, None]  # (B, 1, 1, 1)
                net = m * x[:, t] + (1 - m) * gen
            else:
                net = gen
            h, state = self.rnn.step(net, state)  # (B, P, H/p, W/p)
            gen = self.readout(h)  # (B, C p p, H/p, W/p)
            outs.append(gen)
        y = torch.stack(outs, 1)  # (B, T-1, C p p, H/p, W/p)
        return F.pixel_shuffle(y.flatten(0, 1), p).unflatten(0, y.shape[:2])  # (B, T-1, C, H, W)

    def forward(self, frames_in: torch.Tensor, n_out: int | None = None) -> torch.Tensor:
        n_out = self.cfg.out_frames if n_out is None else int(n_out)
        return self.rollout(frames_in, frames_in.shape[1], n_out)[:, -n_out:]  # (B, n_out, C, H, W)

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """MSE over all T-1 next-frame predictions, scheduled sampling on the target frames."""
        x, y = batch["frames_in"], batch["frames_out"]
        frames = torch.cat([x, y], 1)  # (B, T, C, H, W)
        n_in, n_out = x.shape[1], y.shape[1]
        mask = None
        eta = 0.0
        if self.training and n_out > 1:
            eta = self.eta()
            mask = (torch.rand(x.shape[0], n_out - 1, device=x.device) < eta).to(x.dtype)  # (B, T_out - 1)
            self.train_step += 1
        pred = self.rollout(frames, n_in, n_out, mask)
        loss = F.mse_loss(pred, frames[:, 1:])
        return loss, {"mse": float(loss.detach()), "eta": eta}


register_variant("convlstm_vp", ConvLSTMVPConfig, ConvLSTMPredictor,
                 "ConvLSTM video predictor on core ConvLSTM layers (OpenSTL ConvLSTM; patches, scheduled sampling).")


# OpenSTL configs/mmnist/ConvLSTM.py: 4 x 128 hidden, 5x5, patch 4, scheduled sampling.
ConvLSTMMMNISTConfig = variant(ConvLSTMVPConfig, "ConvLSTMMMNISTConfig")


register_variant("convlstm_mmnist", ConvLSTMMMNISTConfig, ConvLSTMPredictor,
                 "ConvLSTM-S (OpenSTL Moving MNIST): 4 x 128, 5x5, patch 4, scheduled sampling (11.7M computed params).")


TestConvLSTMConfig = variant(ConvLSTMVPConfig, "TestConvLSTMConfig", in_frames=4, out_frames=4, height=16, width=16,
                             d_hidden=8, n_layers=2, kernel_size=3)


register_variant("test_convlstm", TestConvLSTMConfig, ConvLSTMPredictor,
                 "Tiny ConvLSTM predictor for tests (2 x 8 hidden, 3x3, patch 4).")
