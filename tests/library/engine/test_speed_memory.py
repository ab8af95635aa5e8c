"""Precision on GPUs we do not have (mocked capability), gradient checkpointing, TF32/compile switches."""
from types import SimpleNamespace

import pytest
import torch

from tests.helpers import tiny_synthetic
from vop.engine.precision import grad_scaler, resolve_precision
from vop.engine.assembly import build_model
from vop.engine.speed import apply_speed_options
from vop.losses import info_nce


def mock_gpu(monkeypatch, major: int, minor: int, name: str) -> None:
    props = SimpleNamespace(major=major, minor=minor, name=name, total_memory=16 * 2**30)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda *_: props)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *_: (major, minor))
    monkeypatch.setattr(torch.version, "hip", None)


def test_auto_precision_on_a_t4_is_fp16_with_grad_scaler(monkeypatch):
    mock_gpu(monkeypatch, 7, 5, "Tesla T4")
    dtype = resolve_precision("auto", torch.device("cuda"))
    assert dtype == torch.float16
    assert grad_scaler(torch.device("cuda"), dtype).is_enabled()


def test_auto_precision_on_ampere_is_bf16_without_scaler(monkeypatch):
    mock_gpu(monkeypatch, 8, 0, "A100")
    dtype = resolve_precision("auto", torch.device("cuda"))
    assert dtype == torch.bfloat16
    assert not grad_scaler(torch.device("cuda"), dtype).is_enabled()


def test_auto_precision_on_cpu_is_fp32():
    assert resolve_precision("auto", torch.device("cpu")) == torch.float32
    assert not grad_scaler(torch.device("cpu"), torch.float32).is_enabled()


def loss_and_grads(model, frames, ids):
    model.zero_grad(set_to_none=True)
    loss = info_nce(model.encode_text(ids), model.encode_video(frames), model.logit_scale)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("method", ["full", "bias"])
def test_grad_checkpointing_gives_the_same_loss_and_gradients(method, tmp_path):
    cfg = tiny_synthetic(method, tmp_path)
    model = build_model(cfg)[0].train()
    gen = torch.Generator().manual_seed(0)
    frames = torch.randn(3, 2, 3, 224, 224, generator=gen)  # [B, T, 3, H, W]
    ids = torch.randint(1, 1000, (3, 8), generator=gen)
    ids[:, -1] = 49407  # end of text
    loss, grads = loss_and_grads(model, frames, ids)
    calls = []
    model.clip.vision_model.encoder.layers[0].register_forward_pre_hook(lambda *_: calls.append(1))  # (recomputation stops early, before post-hooks)
    model.grad_checkpointing = True
    loss_ckpt, grads_ckpt = loss_and_grads(model, frames, ids)
    assert len(calls) == 2  # forward, then the recomputation in backward: checkpointing is on
    assert torch.equal(loss, loss_ckpt) and grads.keys() == grads_ckpt.keys() and grads
    for name in grads:
        torch.testing.assert_close(grads_ckpt[name], grads[name], rtol=1e-5, atol=1e-7, msg=name)


def test_trainer_switches_reach_the_model(tmp_path):
    cfg = tiny_synthetic("bias", tmp_path, ["trainer.grad_checkpointing=true", "trainer.tf32=false",
                                             "trainer.compile=true"])
    model = build_model(cfg)[0]
    assert model.grad_checkpointing and not torch.backends.cuda.matmul.allow_tf32
    assert all(block._compiled_call_impl is not None for block in model.clip.vision_model.encoder.layers)
    cfg.trainer.tf32 = True
    apply_speed_options(model, cfg.trainer)
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32



def test_random_b32_config_is_clip_b32s_architecture(tmp_path):
    from omegaconf import OmegaConf

    from tests.helpers import compose_cfg

    real, random = (compose_cfg("train", [f"model={n}"], tmp_path).model for n in ("clip_b32", "clip_b32_random"))
    arch = OmegaConf.to_container(real.arch, resolve=True)
    net = OmegaConf.to_container(random.net, resolve=True)
    assert {k: net[k] for k in ("vision", "text", "projection_dim")} == arch
    assert arch["vision"]["patch_size"] == 32 and arch["text"]["max_position_embeddings"] == 77


def test_small_dev_shm_is_reported_with_the_fix_and_the_per_worker_need(monkeypatch, caplog):
    import logging
    import os

    from vop.data.shm import check_shm

    monkeypatch.setattr(os, "statvfs", lambda path: SimpleNamespace(f_blocks=64, f_frsize=2**20))  # Docker's 64 MiB
    with caplog.at_level(logging.WARNING):
        message = check_shm(32, 12, 224, 8)
    # 32 x 12 x 224 x 224 x 3 bytes = 55.1 MiB per batch, 2 prefetched per worker, 8 workers
    assert "holds 64 MiB" in message and "882 MiB" in message and "110 MiB each" in message
    assert "--ipc=host" in message and "--shm-size=2g" in message and message in caplog.text
    assert check_shm(32, 12, 224, 0) is None  # no workers, no shared memory
    monkeypatch.setattr(os, "statvfs", lambda path: SimpleNamespace(f_blocks=2048, f_frsize=2**20))
    assert check_shm(32, 12, 224, 8) is None


def test_fp16_overflow_is_counted_on_the_device_and_skips_the_update(monkeypatch, tmp_path):
    """GradScaler skips a step whose scaled gradients overflow; the trainer counts exactly those
    without reading the scale every step (the gradient norm is non-finite on the same steps)."""
    from vop.engine import trainer as trainer_module
    from vop.engine.assembly import build_trainer

    real, calls = trainer_module.info_nce, [0]

    def loss(*args, **kwargs):  # finite in fp32, but x 65536 (the initial scale) its gradients overflow
        calls[0] += 1
        return real(*args, **kwargs) * (1e35 if calls[0] == 2 else 1.0)

    monkeypatch.setattr(trainer_module, "info_nce", loss)
    trainer = build_trainer(tiny_synthetic("bias", tmp_path, ["trainer.precision=fp16", "method.lr=1e-3",
                                                              "scheduler.warmup_ratio=0"]))
    scaler = trainer.training.scaler
    assert scaler.is_enabled()
    batches = iter(trainer.training.loader)
    trainer.train_step(next(batches), epoch=0)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    scale, count = scaler.get_scale(), trainer.overflow_steps
    trainer.train_step(next(batches), epoch=0)  # overflows
    assert scaler.get_scale() == scale / 2 and trainer.overflow_steps == count + 1
    assert all(torch.equal(p, before[n]) for n, p in trainer.model.named_parameters() if p.requires_grad)
    for _ in range(3):
        trainer.train_step(next(batches), epoch=0)
    # every halving of the scale (no growth within 2000 steps) is one counted overflow
    assert 65536 / scaler.get_scale() == 2 ** trainer.overflow_steps and trainer.training.guard.total == 0
