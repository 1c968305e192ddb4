"""The core's own small task: synthetic sequence regression with any core mixer.

It exists so that the trainer, the CLI and every sequence layer can be exercised end to
end without a domain: ``ostinato train core/toy_seq trainer.max_steps=50``. The target is
a leaky running mean of the input, which a recurrent layer can fit and a memoryless one
cannot, so it doubles as a sanity check for a new mixer (``model.mixer=<registered name>``).
"""
from __future__ import annotations

from dataclasses import dataclass
import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import DataBundle, EpochMixin, batches, index_rng
from .measure import model_device
from .registry import create_model, register_dataset, register_model
from .scan import scan


@dataclass
class ToySeqDataConfig:
    n_train: int = 512
    n_val: int = 128
    n_test: int = 128
    length: int = 32
    d_in: int = 4
    decay: float = 0.9  # target y_t = decay * y_{t-1} + (1 - decay) * x_t
    noise: float = 0.0  # fresh input noise per epoch (drawn with index_rng)
    batch_size: int = 32
    seed: int = 0


class ToySeqDataset(EpochMixin, torch.utils.data.Dataset):
    def __init__(self, cfg: ToySeqDataConfig, n: int, split_seed: int):
        self.cfg, self.n, self.split_seed, self.epoch = cfg, n, split_seed, 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        c = self.cfg
        x = index_rng(c.seed + self.split_seed, 0, i).standard_normal((c.length, c.d_in)).astype("float32")
        if c.noise:
            x = x + c.noise * index_rng(c.seed + self.split_seed, self.epoch + 1, i).standard_normal(x.shape).astype("float32")
        x = torch.from_numpy(x)  # (L, d_in)
        a = torch.full_like(x, c.decay)
        y = scan(a[None], (1 - c.decay) * x[None])[0]  # (L, d_in)
        return {"x": x, "y": y}


@register_dataset("toy_seq", config=ToySeqDataConfig, domain="core")
def toy_seq_data(cfg: ToySeqDataConfig, data_root=None) -> DataBundle:
    """Synthetic sequences whose target is a leaky running mean of the input."""
    return DataBundle(
        train=ToySeqDataset(cfg, cfg.n_train, 0),
        val=ToySeqDataset(cfg, cfg.n_val, 1),
        test=ToySeqDataset(cfg, cfg.n_test, 2),
        batch_size=cfg.batch_size,
        model_kwargs={"d_in": cfg.d_in},
    )


@dataclass
class ToySeqConfig:
    d_in: int = 4
    d_model: int = 16
    mixer: str = ""  # a registered core layer name; "" = a gated diagonal linear recurrence
    dropout: float = 0.0


class ToySeq(nn.Module):
    """in-projection -> sequence mixer -> out-projection; MSE loss against ``y``."""

    def __init__(self, cfg: ToySeqConfig):
        super().__init__()
        self.cfg = cfg
        self.inp = nn.Linear(cfg.d_in, cfg.d_model)
        self.mixer = create_model(cfg.mixer, d_model=cfg.d_model) if cfg.mixer else None
        self.decay_logit = nn.Parameter(torch.zeros(cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.d_model, cfg.d_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.drop(self.inp(x))  # (B, L, D)
        if self.mixer is not None:
            h, _ = self.mixer(u)
        else:
            a = torch.sigmoid(self.decay_logit).expand_as(u)  # (B, L, D)
            h = scan(a, u)
        return self.out(h)  # (B, L, d_in)

    def loss(self, batch):
        pred = self(batch["x"])
        loss = F.mse_loss(pred, batch["y"])
        return loss, {"mse": loss.item()}


@register_model("toy_seq", config=ToySeqConfig, domain="core")
def toy_seq(cfg: ToySeqConfig) -> ToySeq:
    """Tiny sequence regressor around any core mixer (trainer and CLI smoke tests)."""
    return ToySeq(cfg)


def evaluate(model, data: DataBundle, split: str, cfg) -> dict[str, float]:
    """Mean squared error over every element of the split."""
    device = model_device(model)
    se, n = 0.0, 0
    for b in batches(data.split(split), data.eval_batch_size or data.batch_size):
        pred = model(b["x"].to(device))
        se += F.mse_loss(pred, b["y"].to(device), reduction="sum").item()
        n += b["y"].numel()
    return {"mse": se / n, "loss": se / n}

