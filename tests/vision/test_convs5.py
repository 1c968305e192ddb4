import pytest
import torch

from ostinato.core.layers.convssm import ConvS5 as CoreConvS5
from ostinato.core.registry import create_model


def _model(**kw):
    torch.manual_seed(0)
    return create_model("test_convs5", **kw).double().eval()


def test_uses_core_convs5_and_official_sizes():
    from ostinato.vision.models.convs5 import ConvS5MMNISTLongConfig

    c = ConvS5MMNISTLongConfig()
    assert (c.n_layers, c.d_model, c.ssm_size, tuple(c.enc_widths)) == (8, 256, 256, (64, 128, 256))
    m = create_model("convs5_mmnist_long", n_layers=1, ssm_size=32)  # (HiPPO eigh of 256 is slow on busy CPUs)
    assert isinstance(m.ssm, CoreConvS5) and m.ssm.cfg.d_model == 256
    z = m.encoder(torch.zeros(1, 1, 64, 64))
    assert z.shape == (1, 256, 16, 16)  # 64x64 -> 16x16 latent


def test_shapes_and_gradients():
    torch.manual_seed(0)
    m = create_model("test_convs5")
    g = torch.Generator().manual_seed(1)
    batch = {"frames_in": torch.rand(2, 3, 1, 16, 16, generator=g), "frames_out": torch.rand(2, 5, 1, 16, 16, generator=g)}
    loss, logs = m.loss(batch)
    loss.backward()
    assert set(logs) == {"mse_loss", "l1_loss"}
    assert loss.item() == pytest.approx(0.5 * logs["mse_loss"] + 0.5 * logs["l1_loss"], rel=1e-5)
    for n, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
    out = m.eval()(batch["frames_in"], 6)
    assert out.shape == (2, 6, 1, 16, 16) and out.min() >= 0 and out.max() <= 1


def test_parallel_equals_step_mode():
    m = _model()
    v = torch.rand(2, 7, 1, 16, 16, dtype=torch.float64) * 2 - 1
    par, _ = m.predict_next(v)  # parallel scan over all 7 frames
    state, steps = None, []
    for t in range(7):  # the same frames through step mode, one at a time
        y, state = m.ssm.step(m.encode(v[:, t: t + 1])[:, 0], state)
        steps.append(m.decode(y[:, None])[:, 0])
    assert torch.allclose(par, torch.stack(steps, 1), atol=1e-10)
    # generation: step mode with carried state == re-running the parallel model on each prefix
    a, b = m.generate(v[:, :4], 5), m.generate_by_prefix(v[:, :4], 5)
    assert torch.allclose(a, b, atol=1e-10)
    # the state matters: conditioning on a different history changes the continuation
    v2 = v.clone()
    v2[:, 0] = -v2[:, 0]
    assert not torch.allclose(m.generate(v2[:, :4], 5), a)


def test_loss_convention_sums_over_channels_and_width():
    m = _model(loss_weight=1.0)
    v = torch.rand(1, 4, 1, 16, 16, dtype=torch.float64)
    batch = {"frames_in": v[:, :2], "frames_out": v[:, 2:]}
    loss, _ = m.loss(batch)
    s = v * 2 - 1
    pred, _ = m.predict_next(s[:, :-1])
    ref = ((pred - s[:, 1:]) ** 2).sum(dim=(2, 4)).mean()
    assert loss.item() == pytest.approx(ref.item())


def test_d_init_option_reaches_the_core_layers():
    torch.manual_seed(0)
    m = create_model("test_convs5", d_init="lecun")
    biases = [mod.bias for layer in m.ssm.layers for mod in (layer.mixer.conv1, layer.mixer.conv2)]
    assert all(torch.equal(b, torch.zeros_like(b)) for b in biases)
    torch.manual_seed(0)
    d = create_model("test_convs5")  # default: PyTorch's init (what the reported runs used)
    assert all(layer.mixer.conv1.bias.abs().sum() > 0 for layer in d.ssm.layers)
