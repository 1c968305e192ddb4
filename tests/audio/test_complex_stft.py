"""Complex layers against torch's complex arithmetic; STFT round trip and streaming."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ostinato.audio.models.complex_nn import (
    ComplexBatchNorm2d, ComplexConv2d, ComplexConvTranspose2d, ComplexSE, cmul,
)
from ostinato.audio.stft import STFT, StreamingISTFT, StreamingSTFT, resolve_stft, sqrt_hann


def as_complex(x):  # (B, 2C, F, T) -> complex (B, C, F, T)
    r, i = x.chunk(2, dim=1)
    return torch.complex(r, i)


def test_complex_conv2d_is_complex_convolution():
    torch.manual_seed(0)
    conv = ComplexConv2d(3, 4, (5, 2), (2, 1), (0, 1)).double()
    x = torch.randn(2, 6, 21, 6, dtype=torch.float64)  # 3 complex channels
    w = torch.complex(conv.conv_re.weight, conv.conv_im.weight)
    br, bi = conv.conv_re.bias, conv.conv_im.bias
    want = F.conv2d(as_complex(x), w, stride=(2, 1), padding=(0, 1)) + torch.complex(br - bi, br + bi)[:, None, None]
    got = as_complex(conv(x))
    assert got.shape == (2, 4, 9, 7)
    torch.testing.assert_close(got, want)


def test_complex_conv_transpose2d_is_complex_transposed_convolution():
    torch.manual_seed(1)
    conv = ComplexConvTranspose2d(4, 3, (6, 2), (2, 1), (0, 1)).double()
    x = torch.randn(2, 8, 37, 8, dtype=torch.float64)  # 4 complex channels
    w = torch.complex(conv.tconv_re.weight, conv.tconv_im.weight)
    br, bi = conv.tconv_re.bias, conv.tconv_im.bias
    want = F.conv_transpose2d(as_complex(x), w, stride=(2, 1), padding=(0, 1)) + torch.complex(br - bi, br + bi)[:, None, None]
    got = as_complex(conv(x))
    assert got.shape == (2, 3, 78, 7)  # the released 37 -> 78 bins, T+1 -> T frames
    torch.testing.assert_close(got, want)


def test_complex_batchnorm_normalises_real_and_imaginary_separately():
    bn = ComplexBatchNorm2d(3).train()
    x = torch.cat([torch.randn(4, 3, 5, 6) * 3 + 2, torch.randn(4, 3, 5, 6) * 0.1 - 1], dim=1)
    y = bn(x)
    for part in y.chunk(2, dim=1):
        m = part.mean(dim=(0, 2, 3))
        v = part.var(dim=(0, 2, 3), unbiased=False)
        torch.testing.assert_close(m, torch.zeros(3), atol=1e-5, rtol=0)
        torch.testing.assert_close(v, torch.ones(3), atol=5e-3, rtol=0)  # BN eps 1e-5 vs var 0.01
    assert bn.bn_re.running_mean.mean() > 0.1 > bn.bn_im.running_mean.mean()
    bn.eval()  # one fused call with both parts' statistics equals the two modules
    xr, xi = x.chunk(2, dim=1)
    torch.testing.assert_close(bn(x), torch.cat([bn.bn_re(xr), bn.bn_im(xi)], dim=1))


def test_cmul_matches_complex_product():
    a, b = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    torch.testing.assert_close(as_complex(cmul(a, b)), as_complex(a) * as_complex(b))


def test_complex_se_global_formula():
    torch.manual_seed(2)
    se = ComplexSE(16, 8, "global").double()
    x = torch.randn(3, 32, 5, 7, dtype=torch.float64)  # 16 complex channels
    y, _ = se(x)
    xr, xi = x.chunk(2, dim=1)
    zr, zi = xr.mean(dim=(2, 3)), xi.mean(dim=(2, 3))
    gr = se.fc_r(zr) - se.fc_i(zi)
    gi = se.fc_r(zi) + se.fc_i(zr)
    torch.testing.assert_close(y, torch.cat([xr * gr[..., None, None], xi * gi[..., None, None]], dim=1))


def test_complex_se_cumulative_is_causal_and_streams():
    torch.manual_seed(3)
    se = ComplexSE(8, 4, "cumulative").double()
    x = torch.randn(2, 16, 5, 12, dtype=torch.float64)
    full, _ = se(x)
    y1, c = se(x[..., :5])
    y2, _ = se(x[..., 5:], c)
    torch.testing.assert_close(torch.cat([y1, y2], -1), full)
    x2 = x.clone()
    x2[..., 8:] += 5.0  # change the future
    torch.testing.assert_close(se(x2)[0][..., :8], full[..., :8])


def test_sqrt_hann_is_periodic_and_power_complementary():
    w = sqrt_hann(640, torch.float64)
    n = torch.arange(640, dtype=torch.float64)
    torch.testing.assert_close(w**2, 0.5 - 0.5 * torch.cos(2 * torch.pi * n / 640))
    torch.testing.assert_close(w[:320] ** 2 + w[320:] ** 2, torch.ones(320, dtype=torch.float64))


@pytest.mark.parametrize("preset,sizes", [("released", (640, 320, 640)), ("paper", (320, 160, 640))])
def test_presets_and_round_trip(preset, sizes):
    shape = resolve_stft(preset, 16000)
    assert (shape.win_length, shape.hop_length, shape.n_fft) == sizes and shape.n_bins == 321
    st = STFT(shape).double()
    x = torch.randn(2, 16000 + 123, dtype=torch.float64)
    spec = st(x)
    assert spec.shape == (2, 321, 1 + x.shape[1] // shape.hop_length)
    torch.testing.assert_close(st.inverse(spec, x.shape[1]), x)


def test_stft_frames_match_a_manual_dft():
    """Frame t = rfft of the zero-padded signal's samples [t*hop, t*hop + n_fft) times the window."""
    shape = resolve_stft("released", 16000)
    st = STFT(shape).double()
    x = torch.randn(1, 3000, dtype=torch.float64)
    spec = st(x)[0]
    xp = np.pad(x[0].numpy(), (320, 320))
    w = sqrt_hann(640, torch.float64).numpy()
    for t in (0, 3, 9):
        np.testing.assert_allclose(spec[:, t].numpy(), np.fft.rfft(xp[t * 320 : t * 320 + 640] * w), atol=1e-5)  # window stored in fp32


@pytest.mark.parametrize("preset", ["released", "paper"])
def test_streaming_stft_and_istft_equal_offline(preset):
    st = STFT(resolve_stft(preset, 16000)).double()
    x = torch.randn(2, 9001, dtype=torch.float64)
    ana, syn = StreamingSTFT(st, 2, torch.float64), StreamingISTFT(st, 2, torch.float64)
    frames, out, i = [], [], 0
    rng = np.random.default_rng(0)
    while i < x.shape[1]:
        k = int(rng.integers(1, 800))
        f = ana.push(x[:, i : i + k])
        frames.append(f)
        out.append(syn.push(f))
        i += k
    f = ana.flush()
    frames.append(f)
    out += [syn.push(f), syn.flush(x.shape[1])]
    torch.testing.assert_close(torch.cat(frames, -1), st(x))
    torch.testing.assert_close(torch.cat(out, -1), x)


def test_inference_cache_follows_weight_updates():
    torch.manual_seed(4)
    conv = ComplexConv2d(2, 3, (3, 2)).eval()
    bn = ComplexBatchNorm2d(3).eval()
    x = torch.randn(1, 4, 9, 5)
    with torch.no_grad():
        y1 = bn(conv(x))
        conv.conv_im.weight.add_(0.5)  # in-place updates (optimizer steps, load_state_dict) bump versions
        bn.bn_im.running_var.mul_(4.0)
        y2 = bn(conv(x))
    y3 = bn(conv(x))  # with grad: rebuilt from the parameters
    assert not torch.allclose(y1, y2)
    torch.testing.assert_close(y2, y3)
