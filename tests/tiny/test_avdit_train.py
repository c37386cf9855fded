"""Appearance LoRA (peft) and training (flow matching, stages, resumable checkpoints) at tiny size."""
from __future__ import annotations

import pytest
import torch

from models.avdit.lora import (
    add_character_lora,
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


def test_load_lora_refuses_file_without_config(tmp_path):
    from models.loading import save_state_dict

    path = save_state_dict({"x": torch.zeros(1)}, tmp_path / "bad.safetensors")
    with pytest.raises(ModelError, match="no LoRA config"):
        load_lora(tiny_transformer(), path, "bad")


def test_stage_b_training_lowers_loss_and_resumes(tmp_path):
    samples = synthetic_samples(2, seed=0)
    model = tiny_model(seed=0, router=True)
    first = train(model, samples, "b", tmp_path, steps=20, lr=5e-3, save_every=10, log=lambda _: None, skip_stage_a=True)
    assert sum(first[-5:]) / 5 < sum(first[:5]) / 5
    assert (tmp_path / "adapter.safetensors").is_file() and (tmp_path / "checkpoint.safetensors").is_file()
    assert any(float(l.to_out.weight.detach().abs().sum()) > 0 for l in model.audio_layers)
    # Resume in a fresh process-like model: continues from step 20, not from scratch.
    again = tiny_model(seed=0, router=True)
    more = train(again, samples, "b", tmp_path, steps=23, lr=5e-3, save_every=10, log=lambda _: None, skip_stage_a=True)
    assert len(more) == 3
    trained = dict(model.named_parameters())
    assert torch.allclose(dict(again.named_parameters())["audio_layers.0.to_out.bias"],
                          trained["audio_layers.0.to_out.bias"], atol=0.1)
    # Resuming at the saved step restores the trained tensors exactly (nothing left to run).
    restored = tiny_model(seed=0, router=True)
    assert train(restored, samples, "b", tmp_path, steps=23, log=lambda _: None, skip_stage_a=True) == []
    resumed = dict(again.named_parameters())
    assert all(torch.equal(p, resumed[n]) for n, p in restored.named_parameters() if n.startswith(("audio_layers", "router")))


def test_train_cli_stage_c_and_wrong_stage_resume(tmp_path, capsys):
    assert main(["--stage", "c", "--character", "collins", "--tiny", "--synthetic", "1", "--out", str(tmp_path),
                 "--steps", "3", "--rank", "4"]) == 0
    assert main(["--stage", "b", "--tiny", "--synthetic", "1", "--out", str(tmp_path / "b"), "--steps", "1"]) == 2
    assert "--lora dataset=" in capsys.readouterr().err  # stage a is not silently skipped
    assert (tmp_path / "lora-collins.safetensors").is_file()
    assert main(["--stage", "a", "--tiny", "--synthetic", "1", "--out", str(tmp_path), "--steps", "3"]) == 2
    assert "from stage 'c'" in capsys.readouterr().err
    assert main(["--stage", "c", "--tiny", "--synthetic", "1", "--out", str(tmp_path / "x"), "--steps", "1"]) == 2


def trainable_names(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def expected_trainable(model, stage: str, character: str = "collins") -> set[str]:
    """Written out from VauCustom Fig. 3, by parameter name."""
    names = {n for n, _ in model.named_parameters()}
    lora = lambda who: {n for n in names if "lora_" in n and f".{who}." in n}  # noqa: E731
    audio = {n for n in names if n.startswith(("audio_layers.", "router."))
             or (n.startswith("audio_encoder.") and not n.startswith("audio_encoder.wav2vec."))}
    return {"a": lora("dataset"), "b": audio, "c": lora(character),
            "d": lora(character) | audio | {f"identity_tokens.{character}"}}[stage]


@pytest.mark.parametrize("stage", ["a", "b", "c", "d"])
def test_each_stage_trains_exactly_its_parameters(stage, tmp_path):
    from models.avdit.train import prepare_stage

    model = tiny_model(seed=0, router=True)
    tr = model.transformer
    if stage in ("b", "c", "d"):
        add_character_lora(tr, "dataset", rank=4)
    if stage == "d":
        add_character_lora(tr, "collins", rank=4)
    params = prepare_stage(model, stage, "collins", rank=4)
    adapters = set(tr.peft_config)
    assert ("dataset" in adapters) == (stage in ("a", "b")), "stages c and d drop the dataset LoRA"
    assert trainable_names(model) == expected_trainable(model, stage)
    assert {id(p) for p in params} == {id(p) for p in model.parameters() if p.requires_grad}
    assert tr.active_adapters() == (["dataset"] if stage in ("a", "b") else ["collins"])
    # A few steps change only those tensors (the backbone and wav2vec stay bit-identical).
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():  # nonzero B so LoRA A also gets gradients
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    before.update({n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n})
    train(model, synthetic_samples(1), stage, tmp_path, steps=2, lr=1e-2, character="collins", rank=4,
          log=lambda _: None, skip_stage_a=True)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and changed <= expected_trainable(model, stage)
    if stage in ("b", "d"):  # the router head trains with the audio layers (teacher forcing)
        assert any(n.startswith("router.") for n in changed) and any(n.startswith("audio_layers.") for n in changed)
    if stage == "d":
        assert "identity_tokens.collins" in changed
    assert not any(n.startswith(("transformer.", "audio_encoder.wav2vec.")) and "lora_" not in n for n in changed)


def test_stage_d_needs_the_character_lora_and_the_stage_b_adapter(tmp_path, capsys):
    from models.avdit.train import prepare_stage

    with pytest.raises(ModelError, match="stage-c LoRA"):
        prepare_stage(tiny_model(seed=0), "d", "collins", rank=4)
    with pytest.raises(ModelError, match="stage-a dataset LoRA"):  # the library default refuses too
        train(tiny_model(seed=0), synthetic_samples(1), "b", tmp_path / "b", steps=1, log=lambda _: None)
    assert main(["--stage", "d", "--character", "collins", "--tiny", "--synthetic", "1", "--out", str(tmp_path),
                 "--steps", "1"]) == 2
    assert "--adapter" in capsys.readouterr().err


def test_compose_train_stages_a_to_d_and_the_result_generates(tmp_path):
    """`compose train` calls `main`: a -> b -> c -> d on tiny data; the final files load for generation."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from models.avdit.guidance import Guidance
    from models.avdit.pipeline import AvditPipeline, build_with_adapter
    from models.avdit.tiny import tiny_vae
    from models.loading import load_state_dict

    common = ["--tiny", "--synthetic", "2", "--steps", "4", "--rank", "4", "--lr", "1e-2", "--save-every", "100"]
    a, b, c, d = (tmp_path / "runs" / x for x in "abcd")  # --out folders that do not exist yet
    assert main(["--stage", "a", "--out", str(a)] + common) == 0
    assert main(["--stage", "b", "--out", str(b), "--router", "--lora", f"dataset={a / 'lora-dataset.safetensors'}"] + common) == 0
    assert main(["--stage", "c", "--character", "collins", "--out", str(c)] + common) == 0
    assert main(["--stage", "d", "--character", "collins", "--out", str(d), "--adapter", str(b / "adapter.safetensors"),
                 "--lora", f"collins={c / 'lora-collins.safetensors'}"] + common) == 0
    stage_b, stage_d = load_state_dict(b / "adapter.safetensors"), load_state_dict(d / "adapter.safetensors")
    assert set(stage_b) == set(stage_d) and any(not torch.equal(stage_b[k], stage_d[k]) for k in stage_b)  # d trained audio
    assert "identity_tokens" in load_state_dict(d / "lora-collins.safetensors")
    lora_c, lora_d = load_state_dict(c / "lora-collins.safetensors"), load_state_dict(d / "lora-collins.safetensors")
    assert any(not torch.equal(lora_c[k], lora_d[k]) for k in lora_c)  # d trained the character LoRA

    model = tiny_model(seed=0)
    model = build_with_adapter(model.transformer, model.audio_encoder, d / "adapter.safetensors")
    assert model.router is not None  # the stage-b router travels in the adapter
    pipe = AvditPipeline(model, tiny_vae(), FlowMatchEulerDiscreteScheduler(shift=3.0), TinyPrompt())
    pipe.load_character("collins", d / "lora-collins.safetensors")
    pipe.load_character("dataset", a / "lora-dataset.safetensors")
    probe = torch.randn(1, 4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    emb = TinyPrompt()(["<sub1> COLLINS"])[0]

    def base_out():
        with torch.no_grad():
            return model.transformer(probe, torch.tensor([500.0]), emb, return_dict=False)[0]
    pipe.use_characters([])
    plain_base = base_out()
    pipe.use_characters(["collins", "nobody"])
    assert model.transformer.active_adapters() == ["collins"]
    assert (base_out() - plain_base).abs().max() > 1e-5  # re-enabled after being switched off
    assert torch.equal(model.identity_tokens["collins"], load_state_dict(d / "lora-collins.safetensors")["identity_tokens"])
    embeds, lens, _ = pipe.prompt_encoder(["<sub1> COLLINS speaks", ""])
    wav = torch.randn(1, 16000 * 9 // 25, generator=torch.Generator().manual_seed(0))

    def run(**kw):
        return pipe(embeds[:1], embeds[1:], wav, torch.tensor([[0.2, 0.0, 0.8, 1.0]]), 9, 32, 32, text_lens=lens[:1],
                    negative_lens=lens[1:], token_groups=[[0, 1]], characters=["collins"], steps=2, output_type="latent",
                    generator=torch.Generator().manual_seed(0), **kw).video

    plain = run(guidance=Guidance("region", 5.0, 9.0), mask_source="boxes")
    with_id = run(guidance=Guidance("region", 5.0, 9.0, id_scale=4.0), mask_source="boxes")
    routed = run(guidance=Guidance("region", 5.0, 9.0), mask_source="router", router_threshold=0.0)
    assert abs(with_id - plain).max() > 1e-5 and abs(routed - plain).max() > 1e-5


def test_training_reads_a_data_folder(tmp_path):
    from models.loading import save_state_dict

    for i, s in enumerate(synthetic_samples(2, seed=1)):
        tensors = {k: s[k] for k in ("latents", "prompt_embeds", "text_len", "audio", "labels")}
        meta = {k: s[k] for k in ("token_groups", "fps", "num_frames")}
        save_state_dict(tensors, tmp_path / "data" / f"{i}.safetensors", meta)
    from models.avdit.train import load_samples

    loaded = load_samples(tmp_path / "data")
    assert len(loaded) == 2 and loaded[1]["token_groups"] == [[0], [2]] and loaded[0]["latents"].shape == (4, 3, 8, 8)
    assert main(["--stage", "b", "--skip-stage-a", "--tiny", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "b"),
                 "--steps", "2"]) == 0
    assert (tmp_path / "b" / "adapter.safetensors").is_file()
    with pytest.raises(ModelError, match="no .safetensors samples"):
        load_samples(tmp_path)


def test_teacher_forcing_feeds_noised_ground_truth_only_with_a_router():
    from diffusers import FlowMatchEulerDiscreteScheduler

    from models.avdit.train import training_loss

    sample = synthetic_samples(1)[0]
    sched = FlowMatchEulerDiscreteScheduler(shift=3.0)
    sched.set_timesteps(1000)
    truth = (sample["labels"].flatten() == 1).float()
    for router in (False, True):
        model = tiny_model(seed=0, router=router)
        seen = []
        hook = model.audio_layers[0].register_forward_hook(lambda m, a, o: seen.append(a[2]))
        training_loss(model, sched, sample, "b", torch.Generator().manual_seed(0))
        hook.remove()
        route = seen[0][0, 0]
        if router:
            assert not torch.equal(route, truth) and (route - truth).abs().mean() < 0.2
            assert len(model.state.router_logits) == model.num_layers
        else:
            assert torch.equal(route, truth)


def test_training_loss_is_flow_matching_on_the_schedulers_noise_level():
    """x_t = (1 - sigma) x0 + sigma noise, target noise - x0, written out independently."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from models.avdit.train import training_loss

    sample = synthetic_samples(1)[0]
    assert sample["prompt_embeds"].shape == (512, 32)
    assert int(sample["text_len"]) == int((sample["prompt_embeds"].abs().sum(1) > 0).sum())
    sched = FlowMatchEulerDiscreteScheduler(shift=3.0)
    sched.set_timesteps(1000)
    model = tiny_model(seed=0)
    add_character_lora(model.transformer, "dataset", rank=4)
    with torch.no_grad():
        got, parts = training_loss(model, sched, sample, "a", torch.Generator().manual_seed(5))
        g = torch.Generator().manual_seed(5)
        x0 = sample["latents"][None]
        noise = torch.randn(x0.shape, generator=g)
        t = sched.timesteps[torch.randint(1000, (1,), generator=g)]
        sigma = float(t) / 1000
        pred = model.transformer((1 - sigma) * x0 + sigma * noise, t, sample["prompt_embeds"][None], return_dict=False)[0]
    assert torch.allclose(got, ((pred - (noise - x0)) ** 2).mean(), atol=1e-6)
