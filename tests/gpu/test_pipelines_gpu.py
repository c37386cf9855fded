"""Both generation pipelines, whole, on a real GPU: tiny random models (audio layers given weights)
generate the same clip on CUDA as on the CPU, for one, two (L-RoPE) and three (route masks) speakers,
with streaming windows, attention-refined masks, and diffusers' group offload (Wan's blocks streamed
from CPU memory, the audio layers resident). A tensor left on the wrong device, or an audio hook that
group offload bypasses, shows only here. Skipped without CUDA."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

PROMPT = "<alice> talks to <bob> in a kitchen"
GPU = "cuda"  # the device under test
HALVES = torch.tensor([[0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 1.0, 1.0]])


def with_audio_weights(model, seed: int = 3):
    """Zero-initialised audio outputs make audio a no-op; random weights make it matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.audio_layers.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.2)
    return model


def t2v(dev: str, mask_source: str, seed: int = 0):
    from diffusers import FlowMatchEulerDiscreteScheduler

    from models.avdit.guidance import Guidance
    from models.avdit.pipeline import AvditPipeline
    from models.avdit.tiny import TinyPrompt, tiny_model, tiny_vae

    pipe = AvditPipeline(with_audio_weights(tiny_model(seed=0)).to(dev), tiny_vae().to(dev),
                         FlowMatchEulerDiscreteScheduler(shift=3.0), TinyPrompt())
    embeds, lens, offsets = pipe.prompt_encoder([PROMPT, ""])
    groups = [[i for i, (s, e) in enumerate(offsets[0]) if PROMPT[s:e] == name] for name in ("<alice>", "<bob>")]
    audio = torch.randn(2, 16000 * 9 // 25, generator=torch.Generator().manual_seed(1))
    return pipe(embeds[:1], embeds[1:], audio, HALVES, 9, 32, 32, text_lens=lens[:1], negative_lens=lens[1:],
                token_groups=groups, steps=3, guidance=Guidance("region"), mask_source=mask_source,
                generator=torch.Generator().manual_seed(seed), output_type="latent")


def i2v(dev: str, speakers: int, offload: bool = False, dtype=torch.float32):
    from models.avdit.guidance import Guidance
    from models.avdit.i2v import Streaming, stream_blocks
    from models.avdit.tiny import TinyPrompt, tiny_release_pipeline

    pipe = tiny_release_pipeline()
    with_audio_weights(pipe.model)
    pipe.model.to(dtype)
    pipe.model.audio_encoder.wav2vec.float()
    if offload:
        stream_blocks(pipe.model, dev)  # what I2VPipeline.from_local(offload=True) does
    else:
        pipe.model.to(dev)
    pipe.vae.to(dev)
    pipe.image_encoder.to(dev)
    embeds, _, _ = TinyPrompt()(["a", ""])
    frame = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    labels = torch.zeros(4, 4, dtype=torch.long)
    for k in range(speakers):
        labels[:, k * 4 // speakers:(k + 1) * 4 // speakers] = k + 1
    audio = torch.randn(speakers, 16000 * 17 // 25, generator=torch.Generator().manual_seed(1))
    return pipe(embeds[:1], embeds[1:], audio, frame, labels, 17, steps=2, guidance=Guidance("multitalk", 5.0, 4.0),
                streaming=Streaming(9, 5), generator=torch.Generator().manual_seed(0)).video


@pytest.mark.parametrize("mask_source", ["boxes", "attention"])
def test_text_to_video_pipeline_on_gpu_equals_cpu(mask_source):
    cpu, gpu = t2v("cpu", mask_source), t2v(GPU, mask_source)
    got, want = torch.as_tensor(gpu.video).cpu(), torch.as_tensor(cpu.video)
    torch.testing.assert_close(got, want, rtol=0, atol=5e-3)  # CUDA's summation order, not another clip
    assert (got - torch.as_tensor(t2v("cpu", mask_source, seed=1).video)).abs().max() > 0.1  # control: another noise
    assert torch.equal(gpu.labels.cpu(), cpu.labels.cpu())  # the same masks were chosen


@pytest.mark.parametrize("speakers", [1, 2, 3])
def test_release_pipeline_on_gpu_equals_cpu(speakers):
    cpu, gpu = i2v("cpu", speakers), i2v(GPU, speakers)
    assert gpu.shape == cpu.shape == (17, 64, 64, 3)
    diff = np.abs(gpu.astype(int) - cpu.astype(int))
    assert diff.mean() < 0.5 and diff.max() <= 3, (diff.mean(), diff.max())
    assert np.abs(i2v("cpu", speakers, dtype=torch.float32).astype(int) - cpu.astype(int)).max() == 0  # deterministic


def test_group_offload_generates_the_resident_clip():
    resident, offloaded = i2v(GPU, 3), i2v(GPU, 3, offload=True)
    diff = np.abs(resident.astype(int) - offloaded.astype(int))
    assert diff.max() <= 1, diff.max()
    silent = i2v(GPU, 1)  # negative control: another binding gives another clip, so the comparison can fail
    assert np.abs(silent.astype(int) - resident.astype(int)).mean() > 1.0


def test_release_pipeline_in_bf16_on_gpu():
    video = i2v(GPU, 2, dtype=torch.bfloat16)
    ref = i2v(GPU, 2)
    assert video.shape == (17, 64, 64, 3)
    assert np.abs(video.astype(int) - ref.astype(int)).mean() < 8  # bf16 rounding, not another clip
