"""Kokoro's int8 convolutions as matrix products that give the same bits, faster (`convs_as_matmuls`).

The shipped Kokoro-82M graph is dynamically quantized: every 1-D convolution is a `ConvInteger` of uint8
activations (zero point from `DynamicQuantizeLinear`) by uint8 weights, whose int32 sums are then scaled. On
this 2-core machine onnxruntime spends 58% of a line's synthesis in those nodes. The same sums are a
`MatMulInteger` of the padded activations unfolded by kernel tap (im2col: time by tap-and-channel) with the
weights as int8, the layout onnxruntime's fast u8-by-s8 kernels take. Shifting a uint8 weight and its zero
point both by -128 leaves every difference (w - zero point) as it was, and the sums are of integers in int32
either way, so the rewritten graph's outputs are the original's bit for bit (tests/unit/test_int8_convs.py,
on a graph of one node against numpy and on Kokoro's audio and timings). A line is synthesized about 1.7x
faster (bench/RESULTS.md, twenty-second pass).

Only a node this can rewrite exactly is rewritten: 1-D, one group, weights and their one zero point stored in
the graph as uint8. Padding is filled with the activations' zero point, which is what `ConvInteger` pads with
(a padded value then adds nothing to a sum).

Only a CPU whose u8-by-s8 products are exact gets the rewrite (`signed_products_exact`). Those with AVX-VNNI
(or AVX-512 VNNI, AMX) multiply and add into int32. On a CPU with AVX2 alone, onnxruntime's kernel adds each pair
of byte products in int16 with saturation (`vpmaddubsw`): 255 x 127 twice is 64770, clipped to 32767. There
Kokoro's rewritten graph spoke garbled words ("The sex really failed" for "The second relay failed": recogniser
WER 0.55), and the rewrite bought no speed either (the original's u8-by-u8 kernel widens to int16 first and is
exact): 2.0-2.2 s for a 4.5 s line either way, on a 2-core AMD EPYC with AVX2 (bench/RESULTS.md, twenty-sixth pass).
"""
from __future__ import annotations

import functools

import numpy as np


def convs_as_matmuls(model) -> int:
    """Rewrite `model` (an onnx.ModelProto) in place; the number of `ConvInteger` nodes rewritten."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    nodes, added, replaced = [], [], set()
    rewritten = 0

    def const(name: str, value: np.ndarray) -> str:
        added.append(numpy_helper.from_array(value, name))
        return name

    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        w_init = inits.get(node.input[1]) if node.op_type == "ConvInteger" and len(node.input) == 4 else None
        z_init = inits.get(node.input[3]) if w_init is not None else None
        if (w_init is None or z_init is None or w_init.data_type != TensorProto.UINT8 or len(w_init.dims) != 3
                or z_init.data_type != TensorProto.UINT8 or int(np.prod(z_init.dims)) != 1
                or attrs.get("group", 1) != 1 or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")):
            nodes.append(node)
            continue
        x, w_name, x_zero, w_zero = node.input
        w = numpy_helper.to_array(w_init).astype(np.int16)  # (out, in, taps)
        out_ch, in_ch, taps = w.shape
        (dilation,), (stride,) = attrs.get("dilations", [1]), attrs.get("strides", [1])
        before, after = attrs.get("pads", [0, 0])
        u = f"{node.output[0]}/as_matmul"
        # (taps * in, out): row j * in + c is tap j of channel c, as the unfolded activations' columns below
        weights = const(f"{u}/w", np.ascontiguousarray((w - 128).astype(np.int8).transpose(2, 1, 0))
                        .reshape(taps * in_ch, out_ch))
        zero = const(f"{u}/w_zero", (numpy_helper.to_array(z_init).astype(np.int16) - 128).astype(np.int8))
        nodes.append(helper.make_node("Transpose", [x], [f"{u}/xt"], perm=[0, 2, 1]))  # (batch, time, in)
        src = f"{u}/xt"
        if before or after:
            pads = const(f"{u}/pads", np.array([0, before, 0, 0, after, 0], np.int64))
            nodes.append(helper.make_node("Pad", [src, pads, x_zero], [f"{u}/xp"], mode="constant"))
            src = f"{u}/xp"
        if taps > 1 or stride > 1:  # unfold: tap j is time j * dilation + stride * t, for every output step t
            nodes.append(helper.make_node("Shape", [src], [f"{u}/len"], start=1, end=2))
            span = f"{u}/span"
            nodes.append(helper.make_node("Sub", [f"{u}/len", const(f"{u}/reach", np.array([dilation * (taps - 1)],
                                                                                            np.int64))], [span]))
            axes, steps = const(f"{u}/axes", np.array([1], np.int64)), const(f"{u}/steps", np.array([stride], np.int64))
            for j in range(taps):
                start = const(f"{u}/start{j}", np.array([j * dilation], np.int64))
                nodes.append(helper.make_node("Add", [span, start], [f"{u}/end{j}"]))
                nodes.append(helper.make_node("Slice", [src, start, f"{u}/end{j}", axes, steps], [f"{u}/tap{j}"]))
            nodes.append(helper.make_node("Concat", [f"{u}/tap{j}" for j in range(taps)], [f"{u}/col"], axis=2))
            src = f"{u}/col"
        nodes.append(helper.make_node("MatMulInteger", [src, weights, x_zero, zero], [f"{u}/y"]))
        nodes.append(helper.make_node("Transpose", [f"{u}/y"], list(node.output), perm=[0, 2, 1]))
        replaced.update((w_name, w_zero))
        rewritten += 1
    still_used = {name for node in nodes for name in node.input}
    kept = [i for i in graph.initializer if i.name not in replaced or i.name in still_used]
    del graph.node[:], graph.initializer[:]
    graph.node.extend(nodes)
    graph.initializer.extend(kept + added)
    return rewritten


@functools.cache
def signed_products_exact() -> bool:
    """Whether onnxruntime's u8-by-s8 `MatMulInteger` gives exact int32 sums on this CPU: checked once per process
    on products whose pairs overflow int16 (a CPU with AVX2 alone saturates them; the module docstring)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    a = np.tile(np.array([[255, 255, 200, 1]], np.uint8), (4, 16))  # (4, 64)
    b = np.tile(np.array([[127], [127], [-128], [5]], np.int8), (16, 8))  # (64, 8): 255*127*2 = 64770 > 32767
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "probe",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, list(a.shape)),
         helper.make_tensor_value_info("b", TensorProto.INT8, list(b.shape))],
        [helper.make_tensor_value_info("y", TensorProto.INT32, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    got = session.run(None, {"a": a, "b": b})[0]
    return bool(np.array_equal(got, a.astype(np.int64) @ b.astype(np.int64)))
