"""The cell slot of the recurrent video predictors (models/cells.py): every spatial cell in both
hosts, step mode = full forward, one training step; the published recipes unchanged."""
import hashlib

import pytest
import torch

from ostinato.core import recipe as rec
from ostinato.core.errors import ConfigError
from ostinato.core.registry import create_model
from ostinato.vision.models.cells import CellConfig

# every spatial cell, with tiny-size settings it needs (ConvS5: groups dividing 16 channels)
CELLS = {
    "convlstm": {"name": "convlstm"},
    "convgru": {"name": "convgru", "residual": True},
    "convmingru": {"name": "convmingru"},
    "convs5": {"name": "convs5", "ssm_size": 8, "num_groups": 4},
    "convmix-lru": {"name": "convmix", "mixer": {"name": "lru", "d_state": 8}},
    "convmix-gru": {"name": "convmix", "mixer": {"name": "gru"}},
}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_every_cell_is_covered():
    assert {c["name"] for c in CELLS.values()} == set(CellConfig.options())


def _model(host, cell):
    torch.manual_seed(0)
    return create_model(host, cell=dict(cell)).double().eval()


@pytest.mark.parametrize("cell", CELLS.values(), ids=list(CELLS))
def test_convs5_host_step_rollout_equals_forward(cell):
    m = _model("test_convs5", cell)
    assert type(m.ssm).__name__ == "CellSlot" and m.ssm.name == cell["name"]
    v = torch.rand(2, 6, 1, 16, 16, dtype=torch.float64) * 2 - 1
    full, _ = m.predict_next(v)  # the cell's forward over all frames (teacher forcing)
    state, steps = None, []
    for t in range(6):  # the same frames in step mode
        y, state = m.ssm.step(m.encode(v[:, t: t + 1])[:, 0], state)
        steps.append(m.decode(y[:, None])[:, 0])
    assert torch.allclose(full, torch.stack(steps, 1), atol=1e-9)
    gen = m.generate(v[:, :3], 4)  # generation (context in parallel, then steps) = teacher-forced forward
    tf, _ = m.predict_next(torch.cat([v[:, :3], gen[:, :-1]], 1))
    assert torch.allclose(tf[:, 2:], gen, atol=1e-9)


@pytest.mark.parametrize("cell", CELLS.values(), ids=list(CELLS))
def test_convlstm_host_step_rollout_equals_forward(cell):
    import torch.nn.functional as F

    m = _model("test_convlstm", cell)
    frames = torch.rand(2, 8, 1, 16, 16, dtype=torch.float64)
    steps = m.rollout(frames, 4, 4, mask=torch.ones(2, 3, dtype=torch.float64))  # stepped, true frames fed
    x = F.pixel_unshuffle(frames.flatten(0, 1), 4).unflatten(0, (2, 8))[:, :-1]  # (B, 7, 16, 4, 4)
    h, _ = m.rnn(x)  # the cell's full forward
    full = F.pixel_shuffle(m.readout(h.flatten(0, 1)), 4).unflatten(0, (2, 7))
    assert torch.allclose(steps, full, atol=1e-9)


@pytest.mark.parametrize("host", ["test_convs5", "test_convlstm"])
@pytest.mark.parametrize("cell", CELLS.values(), ids=list(CELLS))
def test_one_training_step(host, cell):
    torch.manual_seed(0)
    m = create_model(host, cell=dict(cell)).train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    batch = {"frames_in": torch.rand(2, 3, 1, 16, 16, generator=g), "frames_out": torch.rand(2, 3, 1, 16, 16, generator=g)}
    before = {k: p.detach().clone() for k, p in m.named_parameters()}
    loss, _ = m.loss(batch)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    changed = [k for k, p in m.named_parameters() if not torch.equal(p, before[k])]
    cell_keys = [k for k in before if k.startswith(("ssm.", "rnn."))]
    assert cell_keys and all(k in changed for k in cell_keys if m.get_parameter(k).grad is not None)
    assert any(k in changed for k in cell_keys)


def test_slot_errors_and_round_trip():
    with pytest.raises(ConfigError, match="valid names: convgru, convlstm, convmingru, convmix, convs5"):
        rec.load("vision/cells_mmnist", ["model.cell.name=convfoo"])
    with pytest.raises(ConfigError, match="set by the host"):
        rec.load("vision/cells_mmnist", ["model.cell.name=convgru", "model.cell.d_hidden=8"])
    with pytest.raises(ConfigError, match="causal mixer"):  # the host generates: a mixer that sees the future is refused
        create_model("test_convs5", cell={"name": "convmix", "mixer": {"name": "s5", "bidirectional": True}})
    cfg = rec.load("vision/cells_mmnist", ["model.cell.name=convmix", "model.cell.mixer.name=lru"])
    assert cfg.model.cell.to_dict()["mixer"]["name"] == "lru" and "d_model" not in cfg.model.cell.to_dict()["mixer"]
    assert rec.load("vision/cells_mmnist", []).model.cell is None


# state_dict sha256 at torch.manual_seed(0), and the loss (seed 2) and a 2-frame prediction on a
# fixed (1, 4, 1, 64, 64) input, measured before the cell slot existed
REFERENCE = {
    "convlstm_mmnist": ("1df880b5f61d8307c7f81e7597c38d8506c6972865b5da9794b76a3d362f7157",
                        0.33647438883781433, 0.6305490208788029),
    "convs5_mmnist_long": ("a40b6bc7fb1efea03af24a350983be9ca7664b3f0144f719439f83750bc065d5",
                           42.967018127441406, 4603.073163896799),
}


@pytest.mark.parametrize("name", list(REFERENCE))
def test_published_recipes_unchanged(name):
    from ostinato.core.train import build_model

    cfg = rec.load(f"vision/{name}", [])
    assert cfg.model.cell is None
    torch.manual_seed(0)
    model = build_model(cfg, {"in_frames": 2, "out_frames": 2, "channels": 1, "height": 64, "width": 64})
    h = hashlib.sha256()
    for k, t in model.state_dict().items():
        h.update(k.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    sha, loss_ref, out_ref = REFERENCE[name]
    assert h.hexdigest() == sha  # every parameter and buffer, bit for bit
    v = torch.rand((1, 4, 1, 64, 64), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(2)
    loss, _ = model.train().loss({"frames_in": v[:, :2], "frames_out": v[:, 2:]})
    with torch.no_grad():
        out = model.eval()(v[:, :2], 2)
    assert float(loss.detach()) == pytest.approx(loss_ref, rel=1e-6) and float(out.double().sum()) == pytest.approx(out_ref, rel=1e-6)
