"""method=lora: peft's LoRA layers inside CLIP's blocks, counted as peft counts them, trained alone,
saved alone, loaded back."""
import copy
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from peft import get_peft_model
from peft.tuners.lora import LoraLayer
from safetensors import safe_open

from tests.helpers import CONFIG_DIR, method_config, tiny_synthetic
from vop.commands.train import train
from vop.engine.checkpoint import FILENAME
from vop.errors import ConfigError
from vop.methods.lora import LoRATuning
from vop.retrieval.query_encoder import Encoder


def tiny_model():
    return instantiate(OmegaConf.load(f"{CONFIG_DIR}/model/clip_tiny.yaml").net)


def lora(**overrides):
    cfg = method_config("lora")
    cfg.tuner.update(overrides)
    return instantiate(cfg.tuner)


@pytest.mark.parametrize("towers,targets", [("both", ["q_proj", "v_proj"]), ("vision", ["q_proj", "k_proj", "fc2"]),
                                            ("text", ["out_proj", "fc1"])])
def test_trainable_count_is_pefts_own_report(towers, targets):
    method = lora(towers=towers, targets=targets, rank=4)
    model = tiny_model()
    count = method.apply(model)
    # peft's own wrapper around an identical CLIPModel, with the same LoraConfig.
    theirs = get_peft_model(copy.deepcopy(tiny_model().clip), method.config)
    trainable, total = theirs.get_nb_trainable_parameters()
    assert (count.trainable, count.total) == (trainable, total)
    # And what it is: rank x (in + out) per adapted linear layer.
    layers = [m for n, m in model.clip.named_modules() if isinstance(m, LoraLayer)]
    assert count.trainable == sum(4 * (m.in_features + m.out_features) for m in layers) > 0
    wrapped = {n.split(".")[0] for n, m in model.clip.named_modules() if isinstance(m, LoraLayer)}
    assert wrapped == ({"vision_model", "text_model"} if towers == "both" else {f"{towers}_model"})
    assert {n.rsplit(".", 1)[1] for n, m in model.clip.named_modules() if isinstance(m, LoraLayer)} == set(targets)


def test_a_fresh_lora_model_computes_clip():
    model, plain = tiny_model(), tiny_model()
    lora().apply(model)
    model.eval(), plain.eval()
    torch.manual_seed(0)
    frames, ids = torch.randn(2, 3, 3, 224, 224), torch.randint(300, 40000, (2, 9))
    ids[:, -1] = 49407
    with torch.no_grad():
        torch.testing.assert_close(model.encode_video(frames), plain.encode_video(frames), rtol=0, atol=1e-6)
        torch.testing.assert_close(model.encode_text(ids), plain.encode_text(ids), rtol=0, atol=1e-6)


@pytest.mark.parametrize("bad", [{"towers": "audio"}, {"targets": ["qkv"]}, {"targets": []}, {"rank": 0},
                                 {"dropout": 1.0}])
def test_bad_keys_are_refused_by_name(bad):
    with pytest.raises(ConfigError, match=f"method.tuner.{next(iter(bad))}"):
        LoRATuning(**bad)


def test_training_changes_only_the_lora_tensors_and_the_checkpoint_holds_only_them(tmp_path):
    cfg = tiny_synthetic("lora", tmp_path, ["method.lr=1e-2", "scheduler.warmup_ratio=0",
                                            "trainer.max_steps_per_epoch=3", "trainer.eval_every_epoch=false"])
    before = {n: p.detach().clone() for n, p in Encoder(cfg).model.named_parameters()}
    train(cfg)
    after = Encoder.from_run(cfg.paths.output_dir).model  # built from the run's config, its tensors loaded
    changed = {n for n, p in after.named_parameters() if not torch.equal(p, before[n])}
    lora_names = {n for n in before if ".lora_A." in n or ".lora_B." in n}
    assert changed == lora_names, "exactly the LoRA tensors train (B from zero, A from its random init)"
    with safe_open(str(Path(cfg.paths.output_dir) / FILENAME), framework="pt") as f:
        saved = set(f.keys())
        assert saved == lora_names
        for name in saved:
            torch.testing.assert_close(f.get_tensor(name), dict(after.named_parameters())[name], rtol=0, atol=0)
