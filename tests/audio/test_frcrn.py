"""FRCRN: geometry, parameter counts, cIRM mask, loss, SI-SNR, causal streaming."""
import numpy as np
import pytest
import torch

from ostinato.audio.models.losses import si_snr_torch
from ostinato.audio.models.frcrn import FRCRNDoubleConfig, geometry, official_key
from ostinato.core.errors import ConfigError
from ostinato.core.registry import create_model


def _randomize_bn(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


def test_released_geometry():
    shape, bins, dec = geometry(FRCRNDoubleConfig())
    assert (shape.win_length, shape.hop_length, shape.n_fft) == (640, 320, 640)
    assert bins == [321, 159, 78, 37, 17, 7, 2, 1]
    assert dec == [2, 5, 5, 5, 6, 5, 5]  # the released decoder kernels


def test_frcrn_double_parameter_count():
    """Released FRCRN_SE_16K: 13,141,844 trainable, of which 2 x (141,824 FSMN + 16,960 SE)
    sit in modules that are never called; we build only what is called."""
    with torch.device("meta"):  # shapes only, no memory or init time
        m = create_model("frcrn_double")
        single = create_model("frcrn")
    assert sum(p.numel() for p in m.parameters() if p.requires_grad) == 13_141_844 - 2 * (141_824 + 16_960)
    assert len(m.unets) == 2
    assert sum(p.numel() for p in single.parameters()) == 12_824_276 // 2


def test_bad_geometry_and_causal_global_se_are_config_errors():
    with pytest.raises(ConfigError, match="enc_freq_kernels"):
        create_model("test_frcrn", enc_freq_kernels=[5, 5, 5, 5, 5, 5])
    with pytest.raises(ConfigError, match="se_pool"):
        create_model("frcrn_causal", se_pool="global")


def test_mask_is_applied_as_complex_multiplication():
    torch.manual_seed(0)
    m = create_model("test_frcrn").eval()
    wav = torch.randn(2, 4000)
    spec = m.stft(wav)
    est, mask, _ = m.enhance_spec(spec)
    u = m.unets[0](torch.stack([spec.real, spec.imag], dim=1))[0]  # raw UNet output (B, 2, F, T)
    cirm = torch.complex(torch.tanh(u[:, 0]), torch.tanh(u[:, 1]))
    torch.testing.assert_close(torch.complex(mask[:, 0], mask[:, 1]), cirm)
    torch.testing.assert_close(est, spec * cirm)  # E_r = X_r M_r - X_i M_i, E_i = X_r M_i + X_i M_r
    torch.testing.assert_close(m(wav), m.stft.inverse(est, 4000))


def test_double_unet_mask_is_sum_of_tanh():
    torch.manual_seed(0)
    m = create_model("test_frcrn", n_unets=2).eval()
    x = torch.randn(1, 2, 65, 9)
    mask, _ = m.masks(x)
    u1, _ = m.unets[0](x)
    u2, _ = m.unets[1](u1)  # UNet 2 takes UNet 1's raw output
    torch.testing.assert_close(mask, torch.tanh(u1) + torch.tanh(u2))


def test_si_snr_values():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(1, 8000, generator=g, dtype=torch.float64)
    s = s - s.mean()
    n = torch.randn(1, 8000, generator=g, dtype=torch.float64)
    n = n - n.mean()
    n = n - (n * s).sum() / (s * s).sum() * s  # orthogonal to s
    n = n * (s.norm() / n.norm()) * 10 ** (-10 / 20)  # 10 dB below s
    torch.testing.assert_close(si_snr_torch(s + n, s), torch.tensor([10.0], dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(si_snr_torch(-3 * (s + n) + 0.5, s), torch.tensor([10.0], dtype=torch.float64), atol=1e-4, rtol=0)
    assert si_snr_torch(s, s).item() > 50


@pytest.mark.parametrize("mode", ["released", "clip"])
def test_target_mask_handling(mode):
    m = create_model("test_frcrn", mask_target=mode)
    g = torch.Generator().manual_seed(1)
    noisy = torch.randn(1, 4000, generator=g)
    clean = 3 * noisy + 0.1 * torch.randn(1, 4000, generator=g)  # mask real parts near 3
    t = m.target_mask(noisy, clean)
    assert t.shape == (1, 2, 65, 1 + 4000 // 64)
    if mode == "released":  # > 2 -> 1, < -2 -> -1: no value of magnitude above 2, many exactly 1
        assert t.abs().max() <= 2 and (t[:, 0] == 1).float().mean() > 0.5
    else:
        assert t.abs().max() <= 2 and (t[:, 0] == 2).float().mean() > 0.5


def test_loss_backward_and_logs():
    torch.manual_seed(0)
    m = create_model("test_frcrn")
    clean = torch.randn(3, 8000) * 0.1
    loss, logs = m.loss({"noisy": clean + 0.05 * torch.randn(3, 8000), "clean": clean})
    loss.backward()
    assert torch.isfinite(loss) and set(logs) == {"si_snr", "mask_mse"}
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    assert all(getattr(p, "_no_weight_decay", False) for n, p in m.named_parameters() if n.endswith("bias"))


def test_causal_streaming_equals_offline():
    m = _randomize_bn(create_model("test_frcrn_causal")).double().eval()
    torch.manual_seed(0)
    x = torch.randn(2, 3001, dtype=torch.float64) * 0.1
    with torch.no_grad():
        full = m(x)
    s = m.stream(batch_size=2)
    rng = np.random.default_rng(0)
    outs, i = [], 0
    while i < x.shape[1]:
        k = int(rng.integers(1, 500))
        outs.append(s.push(x[:, i : i + k]))
        i += k
    outs.append(s.flush())
    torch.testing.assert_close(torch.cat(outs, dim=1), full)


def test_causal_output_ignores_the_future():
    m = _randomize_bn(create_model("test_frcrn_causal")).double().eval()
    x = torch.randn(1, 6400, dtype=torch.float64) * 0.1
    x2 = x.clone()
    x2[:, 4000:] += 1.0
    with torch.no_grad():
        a, b = m(x), m(x2)
    # a frame ends n_fft / 2 = 64 samples after its centre: samples up to 4000 - 128 cannot see the change
    torch.testing.assert_close(a[:, : 4000 - 128], b[:, : 4000 - 128])
    assert (a[:, 4000:] - b[:, 4000:]).abs().max() > 1e-3


def test_non_causal_model_refuses_to_stream():
    with pytest.raises(ConfigError, match="causal"):
        create_model("test_frcrn").stream()


def test_official_key_mapping():
    assert official_key("model.unet.encoder3.conv.conv_re.weight") == "unets.0.encoders.3.conv.conv_re.weight"
    assert official_key("model.unet2.decoder4.transconv.tconv_im.bias") == "unets.1.decoders.4.conv.tconv_im.bias"
    assert official_key("model.unet.fsmn_enc2.fsmn_re_L1.linear.weight") == "unets.0.fsmn_enc.1.cfsmn.fsmn_re_L1.linear.weight"
    assert official_key("model.unet.fsmn_enc0.fsmn_re_L1.linear.weight") is None  # never called
    assert official_key("model.unet.fsmn.fsmn_im_L2.conv1.weight") == "unets.0.fsmn.cfsmn.fsmn_im_L2.conv1.weight"
    assert official_key("model.stft.weight") is None


def _to_official_keys(sd):
    """Our frcrn_double state dict under the released key names (inverse of official_key)."""
    import re

    out = {}
    for k, v in sd.items():
        m = re.match(r"unets\.(\d)\.(.+)", k)
        unet, rest = ("unet" if m.group(1) == "0" else "unet2"), m.group(2)
        rest = re.sub(r"^encoders\.(\d+)\.", r"encoder\1.", rest)
        rest = re.sub(r"^decoders\.(\d+)\.conv\.", r"decoder\1.transconv.", rest)
        rest = re.sub(r"^decoders\.(\d+)\.bn\.", r"decoder\1.bn.", rest)
        rest = re.sub(r"^fsmn_enc\.(\d+)\.cfsmn\.", lambda mm: f"fsmn_enc{int(mm.group(1)) + 1}.", rest)
        rest = re.sub(r"^fsmn_dec\.(\d+)\.cfsmn\.", r"fsmn_dec\1.", rest)
        rest = re.sub(r"^se_enc\.(\d+)\.", r"se_layer_enc\1.", rest)
        rest = re.sub(r"^se_dec\.(\d+)\.", r"se_layer_dec\1.", rest)
        rest = re.sub(r"^fsmn\.cfsmn\.", "fsmn.", rest)
        out[f"module.model.{unet}.{rest}"] = v
    out["module.model.stft.weight"] = torch.zeros(642, 1, 640)  # frozen kernels: dropped
    return out


def test_load_official_checkpoint(tmp_path):
    from ostinato.audio.models.frcrn import load_official

    torch.manual_seed(0)
    src = _randomize_bn(create_model("frcrn_double")).eval()
    torch.save({"model": _to_official_keys(src.state_dict())}, tmp_path / "last_best_checkpoint.pt")
    m = load_official(tmp_path / "last_best_checkpoint.pt")
    x = torch.randn(1, 3200) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(m(x), src(x))
    from ostinato.audio.models.frcrn import load_official_state_dict

    bad = {k: v for k, v in _to_official_keys(src.state_dict()).items() if "encoder3" not in k}
    with pytest.raises(ConfigError, match="lacks"):
        load_official_state_dict(m, bad)
