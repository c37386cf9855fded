"""Kokoro's int8 convolutions rewritten as matrix products (`tools.speech.int8_convs`) give the same bits: on a
graph of one `ConvInteger` against an independent numpy convolution, for every kernel, padding, dilation and
stride Kokoro uses, and on Kokoro's own audio and phoneme timings. On a CPU whose u8-by-s8 products saturate
(AVX2 alone) the rewrite is not used: activations under 128 check its layout there (no pair of products can
reach int16's limit), the full range only where the products are exact."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from tools.speech import kokoro_voice  # noqa: E402
from tools.speech.int8_convs import convs_as_matmuls, signed_products_exact  # noqa: E402


def _graph(w: np.ndarray, w_zero: int, taps: int, pad: int, dilation: int, stride: int, group: int = 1):
    """x (uint8, (1, in, time)) and its zero point in, one ConvInteger by `w` (uint8 weights in the graph) out."""
    conv = helper.make_node("ConvInteger", ["x", "w", "x_zero", "w_zero"], ["y"], kernel_shape=[taps],
                            pads=[pad, pad], dilations=[dilation], strides=[stride], group=group)
    graph = helper.make_graph(
        [conv], "conv",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, None, None]),
         helper.make_tensor_value_info("x_zero", TensorProto.UINT8, [])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(w_zero, np.uint8), "w_zero")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _run(model, x: np.ndarray, x_zero: int) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x, "x_zero": np.array(x_zero, np.uint8)})[0]


def _numpy_conv(x, x_zero, w, w_zero, pad, dilation, stride) -> np.ndarray:
    """The convolution of the zero-point-free integers, written out: padding holds the zero point (adds nothing)."""
    xs = np.pad(x[0].astype(np.int64) - x_zero, ((0, 0), (pad, pad)))
    ws = w.astype(np.int64) - w_zero
    out_ch, _, taps = ws.shape
    steps = (xs.shape[1] - dilation * (taps - 1) - 1) // stride + 1
    y = np.zeros((out_ch, steps), np.int64)
    for t in range(steps):
        for j in range(taps):
            y[:, t] += ws[:, :, j] @ xs[:, t * stride + j * dilation]
    return y[None]


@pytest.mark.parametrize("top", [128, 256], ids=["7-bit", "8-bit"])
@pytest.mark.parametrize("taps, pad, dilation, stride", [
    (3, 1, 1, 1), (7, 3, 1, 1), (11, 5, 1, 1), (1, 0, 1, 1), (5, 2, 1, 1), (7, 9, 3, 1), (11, 25, 5, 1),
    (3, 1, 1, 2), (3, 5, 5, 1), (12, 3, 1, 6),  # Kokoro's kinds
    (4, 0, 2, 3), (1, 2, 1, 2),
])
def test_a_rewritten_convolution_gives_the_same_integers(taps, pad, dilation, stride, top):
    """Activations and their zero point under `top`: under 128, exact on every CPU (the module docstring)."""
    if top == 256 and not signed_products_exact():
        pytest.skip("this CPU's u8-by-s8 products saturate: Kokoro is not rewritten here")
    rng = np.random.default_rng(taps * 100 + pad * 10 + stride)
    in_ch, out_ch, length = 6, 5, 40
    w = rng.integers(1 if top == 128 else 0, 256, (out_ch, in_ch, taps), dtype=np.uint8)  # shifted: -127..127
    w_zero, x_zero = int(rng.integers(0, 256)), int(rng.integers(0, top))
    x = rng.integers(0, top, (1, in_ch, length), dtype=np.uint8)
    original, rewritten = _graph(w, w_zero, taps, pad, dilation, stride), _graph(w, w_zero, taps, pad, dilation, stride)
    assert convs_as_matmuls(rewritten) == 1
    assert [n.op_type for n in rewritten.graph.node].count("ConvInteger") == 0
    assert {i.name for i in rewritten.graph.initializer}.isdisjoint({"w", "w_zero"})  # the originals are gone
    expected = _numpy_conv(x, x_zero, w, w_zero, pad, dilation, stride)
    assert np.array_equal(_run(original, x, x_zero), expected)  # onnxruntime's own ConvInteger, for the record
    got = _run(rewritten, x, x_zero)
    assert got.dtype == np.int32 and np.array_equal(got, expected)
    longer = rng.integers(0, top, (1, in_ch, length + 7), dtype=np.uint8)  # the time length is not fixed
    expected = _numpy_conv(longer, x_zero, w, w_zero, pad, dilation, stride)
    assert np.array_equal(_run(rewritten, longer, x_zero), expected)


def test_a_convolution_it_cannot_rewrite_exactly_is_left_alone():
    w = np.random.default_rng(0).integers(0, 256, (4, 3, 3), dtype=np.uint8)  # 6 channels in two groups
    model = _graph(w, 7, 3, 1, 1, 1, group=2)
    assert convs_as_matmuls(model) == 0 and [n.op_type for n in model.graph.node] == ["ConvInteger"]


def test_kokoro_speaks_the_same_samples_and_timings_as_the_shipped_graph(monkeypatch):
    """The shipped model as loaded against the same model unchanged: one sentence in two packs, bit for bit.
    Loaded with the rewrite forced, it speaks the same bits exactly where this CPU's probe says its products are
    exact, and other bits where it says they are not: Kokoro's own audio checks the probe."""
    sentence = "The children laughed as the kite rose above the hill."
    packs = ("jf_nezumi", "jm_kumo")
    real, counted = kokoro_voice.convs_as_matmuls, []

    def spoken(rewrite, exact=None, voices=packs):
        monkeypatch.setattr(kokoro_voice, "_STATE", {})  # loaded afresh here, whatever an earlier test loaded
        monkeypatch.setattr(kokoro_voice, "convs_as_matmuls", rewrite)
        if exact is not None:
            monkeypatch.setattr(kokoro_voice, "signed_products_exact", lambda: exact)
        return [kokoro_voice.raw_synthesize([sentence], kokoro_voice.pack(p)) for p in voices]

    loaded = spoken(lambda model: counted.append(real(model)) or counted[-1])
    assert counted == ([87] if signed_products_exact() else [])  # every ConvInteger of the shipped graph, or none
    original = spoken(lambda model: 0)
    for a, b in zip(loaded, original):
        assert len(a.audio) > kokoro_voice.SR and np.array_equal(a.audio, b.audio)
        assert a.phonemes == b.phonemes
    n = min(len(r.audio) for r in loaded)
    assert not np.array_equal(loaded[0].audio[:n], loaded[1].audio[:n])  # two voices, not one sound
    (forced,) = spoken(real, exact=True, voices=packs[:1])
    same = len(forced.audio) == len(original[0].audio) and np.array_equal(forced.audio, original[0].audio)
    assert same == signed_products_exact()
