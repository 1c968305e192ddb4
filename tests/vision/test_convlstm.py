import pytest
import torch
import torch.nn.functional as F

from ostinato.core.layers.convlstm import ConvLSTM as CoreConvLSTM
from ostinato.core.registry import create_model


def _batch(b=2, t_in=4, t_out=4, hw=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"frames_in": torch.rand(b, t_in, 1, hw, hw, generator=g),
            "frames_out": torch.rand(b, t_out, 1, hw, hw, generator=g)}


def test_uses_core_layers_and_openstl_sizes():
    m = create_model("convlstm_mmnist")
    assert isinstance(m.rnn, CoreConvLSTM)
    assert [c.conv.weight.shape for c in m.rnn.layers] == [(512, 16 + 128, 5, 5)] + [(512, 256, 5, 5)] * 3
    assert all(c.conv.bias is None for c in m.rnn.layers)
    # OpenSTL reports 15.0M including its unused conv_o / conv_last (4 x 851,968)
    assert sum(p.numel() for p in m.parameters()) + 4 * (256 * 128 * 25 + 256 * 128) == 15_083_520


def test_shapes_gradients_and_feedback():
    torch.manual_seed(0)
    m = create_model("test_convlstm")
    b = _batch()
    assert m(b["frames_in"], 7).shape == (2, 7, 1, 16, 16)
    loss, logs = m.loss(b)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    assert logs["eta"] == pytest.approx(1 - 2e-5) and int(m.train_step) == 1
    m.eval()
    with torch.no_grad():  # at test time predictions are fed back: forward == rollout without truth
        full = m.rollout(torch.cat([b["frames_in"], b["frames_out"]], 1), 4, 4)
        assert torch.allclose(m(b["frames_in"], 4), full[:, -4:])
        # all-ones mask = teacher forcing: the last prediction comes from true frames only
        tf = m.rollout(torch.cat([b["frames_in"], b["frames_out"]], 1), 4, 4, torch.ones(2, 3))
        assert not torch.allclose(tf[:, -1], full[:, -1])


def test_scheduled_sampling_schedule_and_loss_target():
    m = create_model("test_convlstm", ss_rate=0.25, ss_stop_step=3)
    etas = []
    for _ in range(5):
        etas.append(m.eta())
        m.train_step += 1
    assert etas == pytest.approx([0.75, 0.5, 0.25, 0.0, 0.0])
    assert create_model("test_convlstm", scheduled_sampling=False).eta() == 0.0
    m = create_model("test_convlstm").eval()
    b = _batch()
    frames = torch.cat([b["frames_in"], b["frames_out"]], 1)
    loss, _ = m.loss(b)  # eval mode: no mask, targets are frames 1..T-1
    assert loss.item() == pytest.approx(F.mse_loss(m.rollout(frames, 4, 4), frames[:, 1:]).item())
