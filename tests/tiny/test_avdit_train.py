"""Appearance LoRA (peft) and training (flow matching, stages, resumable checkpoints) at tiny size."""
from __future__ import annotations

import pytest
import torch

from models.avdit.lora import (
    add_character_lora,
    identity_gate,
    load_lora,
    lora_parameters,
    save_lora,
    use_characters,
)
from models.avdit.tiny import TinyPrompt, tiny_model, tiny_transformer
from models.avdit.train import main, synthetic_samples, train
from models.errors import ModelError


def forward(tr, seed=0):
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(1, 4, 2, 8, 8, generator=g)
    embeds = TinyPrompt()(["<sub1> COLLINS at dusk"])[0]
    with torch.no_grad():
        return tr(latents, torch.tensor([500.0]), embeds, return_dict=False)[0]


def randomise(tr, name, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lora_parameters(tr, name):
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def test_lora_add_save_load_and_multi_adapter(tmp_path):
    torch.manual_seed(0)
    tr = tiny_transformer()
    base = forward(tr)
    add_character_lora(tr, "collins", rank=4)
    assert torch.allclose(forward(tr), base, atol=1e-6)  # B starts at zero
    randomise(tr, "collins", 1)
    add_character_lora(tr, "hopper", rank=4)
    randomise(tr, "hopper", 2)
    use_characters(tr, ["collins"])
    only_collins = forward(tr)
    use_characters(tr, ["collins", "hopper"])
    both = forward(tr)
    assert (only_collins - base).abs().max() > 1e-3 and (both - only_collins).abs().max() > 1e-3
    path = save_lora(tr, "collins", tmp_path / "collins.safetensors")
    save_lora(tr, "hopper", tmp_path / "hopper.safetensors")

    torch.manual_seed(0)
    fresh = tiny_transformer()
    assert torch.equal(forward(fresh), base)
    load_lora(fresh, path, "collins")
    load_lora(fresh, tmp_path / "hopper.safetensors", "hopper")
    use_characters(fresh, ["collins"])
    assert torch.allclose(forward(fresh), only_collins, atol=1e-5)
    use_characters(fresh, ["collins", "hopper"])
    assert torch.allclose(forward(fresh), both, atol=1e-5)
    with identity_gate(fresh, torch.tensor([0.0])):  # ID guidance's "without identity" row
        assert torch.allclose(forward(fresh), base, atol=1e-5)


def test_load_lora_refuses_file_without_config(tmp_path):
    from models.loading import save_state_dict

    path = save_state_dict({"x": torch.zeros(1)}, tmp_path / "bad.safetensors")
    with pytest.raises(ModelError, match="no LoRA config"):
        load_lora(tiny_transformer(), path, "bad")


def test_stage_b_training_lowers_loss_and_resumes(tmp_path):
    samples = synthetic_samples(2, seed=0)
    model = tiny_model(seed=0, router=True)
    first = train(model, samples, "b", tmp_path, steps=20, lr=5e-3, save_every=10, log=lambda _: None)
    assert sum(first[-5:]) / 5 < sum(first[:5]) / 5
    assert (tmp_path / "adapter.safetensors").is_file() and (tmp_path / "checkpoint.safetensors").is_file()
    assert any(float(l.to_out.weight.detach().abs().sum()) > 0 for l in model.audio_layers)
    # Resume in a fresh process-like model: continues from step 20, not from scratch.
    again = tiny_model(seed=0, router=True)
    more = train(again, samples, "b", tmp_path, steps=23, lr=5e-3, save_every=10, log=lambda _: None)
    assert len(more) == 3
    trained = dict(model.named_parameters())
    assert torch.allclose(dict(again.named_parameters())["audio_layers.0.to_out.bias"],
                          trained["audio_layers.0.to_out.bias"], atol=0.1)


def test_train_cli_stage_c_and_wrong_stage_resume(tmp_path, capsys):
    assert main(["--stage", "c", "--character", "collins", "--tiny", "--synthetic", "1", "--out", str(tmp_path),
                 "--steps", "3", "--rank", "4"]) == 0
    assert (tmp_path / "lora-collins.safetensors").is_file()
    assert main(["--stage", "a", "--tiny", "--synthetic", "1", "--out", str(tmp_path), "--steps", "3"]) == 2
    assert "from stage 'c'" in capsys.readouterr().err
    assert main(["--stage", "c", "--tiny", "--synthetic", "1", "--out", str(tmp_path / "x"), "--steps", "1"]) == 2
