"""The config fields every step policy shares (:mod:`.muvla`, with memory tokens or a mixer slot)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StepPolicyConfig:
    """Observation encoder, transformer backbone, action-chunk head, TBPTT and the auxiliary memory loss."""

    # filled from the data (model_kwargs)
    image_channels: int = 3  # 3 per camera; 0 = no images (state observations)
    proprio_dim: int = 4
    action_dim: int = 2
    chunk: int = 8  # action-chunk length (OpenVLA-OFT / muVLA: 8)
    vocab: int = 512
    max_tokens: int = 16
    # observation encoder
    encoder: str = "mobilenetv3_small_050"  # any timm model with features_only
    pretrained: bool = False  # honoured when the weights are reachable
    encoder_stage: int = 2  # feature level used (mobilenetv3: 2 = stride 8); -1 = the last
    encoder_args: dict = field(default_factory=dict)  # timm.create_model keywords, e.g. {channels: [16, 32, 64, 128]}
    image_grid: int = 4  # image tokens per camera = image_grid ** 2 (adaptive average pooling)
    # backbone
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    tbptt_length: int = 8  # K: steps of backprop through time before the carried state is detached
    # Auxiliary memory loss (not muVLA, which has none; 0 = off): weight of an MSE that asks a small decoder to
    # rebuild the episode's first frame (average-pooled to recon_grid x recon_grid, normalised like the encoder's
    # input) from the memory each step writes, after reconstructive-memory agents (MERLIN, Wayne et al. 2018). It
    # gives the memory write at the cue a direct, dense signal at every step instead of one through the decision
    # alone. Training only: the decoder is not used to act.
    memory_recon: float = 0.0
    recon_grid: int = 16
