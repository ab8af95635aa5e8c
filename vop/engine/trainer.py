"""The training loop, top to bottom in plain PyTorch."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm import tqdm

from vop.data.gpu_transforms import VideoTransform
from vop.engine import setup
from vop.engine.checkpoint import FILENAME, save_checkpoint
from vop.engine.device_feed import DeviceFeed
from vop.engine.loggers import RunLogger
from vop.engine.optim import build_optimizer, param_groups, warmup_steps
from vop.engine.precision import autocast, grad_scaler, resolve_device, resolve_precision
from vop.engine.rundir import prefixed, save_config, save_metrics
from vop.losses import info_nce

log = logging.getLogger(__name__)


class Trainer:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.run_dir = Path(cfg.paths.output_dir)
        setup.seed_everything(cfg.seed)
        self.device = resolve_device(cfg.trainer.device)
        self.dtype = resolve_precision(cfg.trainer.precision, self.device)
        data = cfg.data
        # Annotations first: a missing dataset should fail in seconds, before weights load.
        splits = setup.load_splits(cfg, data.train_split, data.test_split)
        self.train_split, self.test_split, self.bad_videos, self.data_report = setup.usable_splits(
            cfg, splits[data.train_split], splits[data.test_split])  # README "Bad videos"
        self.model, self.tokenizer, self.method, self.count = setup.build_model(cfg)
        self.model.to(self.device)
        self.decoder = instantiate(cfg.decoder)
        self.evaluator = setup.build_evaluator(cfg, self.test_split, self.decoder, self.tokenizer, self.device,
                                               self.dtype, self.model.image_size)
        self.logger = RunLogger(self.run_dir, cfg)
        self.step = 0

    # ------------------------------------------------------------------ setup of training
    def prepare_training(self) -> None:
        cfg = self.cfg
        self.loader = setup.train_loader(cfg, self.train_split, self.decoder, self.tokenizer,
                                         pin_memory=self.device.type == "cuda")
        self.steps_per_epoch = len(self.loader)
        if cfg.trainer.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, cfg.trainer.max_steps_per_epoch)
        if self.steps_per_epoch == 0:
            raise ValueError(f"{self.train_split.num_captions} training pairs give no full batch of "
                             f"data.batch_size={cfg.data.batch_size}")
        groups = param_groups(self.model, self.method, cfg.method.lr, cfg.method.lr_new, cfg.optim.weight_decay)
        self.optimizer = build_optimizer(instantiate(cfg.optim.optimizer), groups)
        total = self.steps_per_epoch * cfg.trainer.epochs
        self.scheduler = instantiate(cfg.scheduler.schedule)(
            self.optimizer, num_warmup_steps=warmup_steps(total, cfg.scheduler.warmup_ratio),
            num_training_steps=total)
        self.scaler = grad_scaler(self.device, self.dtype)
        self.transform = VideoTransform(size=self.model.image_size, train=True)
        self.crop_rng = torch.Generator().manual_seed(self.cfg.seed)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict:
        cfg = self.cfg
        save_config(self.run_dir, cfg)
        log.info("run directory: %s", self.run_dir)
        log.info("model %s, method %s: %s", cfg.model.name, cfg.method.name, self.count)
        self.logger.summary({"trainable_params": self.count.trainable, "total_params": self.count.total})
        metrics: dict = {}
        if self.count.trainable == 0:
            log.info("method %s has no trainable parameters: evaluating only", cfg.method.name)
            metrics = self.evaluate(epoch=0)
        else:
            self.prepare_training()
            for epoch in range(cfg.trainer.epochs):
                self.train_epoch(epoch)
                if cfg.trainer.eval_every_epoch or epoch == cfg.trainer.epochs - 1:
                    metrics = self.evaluate(epoch + 1)
            save_checkpoint(self.run_dir / FILENAME, self.model, cfg, {"epoch": cfg.trainer.epochs,
                                                                       "step": self.step})
        return self.finish(metrics)

    def train_epoch(self, epoch: int) -> None:
        self.model.train()
        self.loader.dataset.set_epoch(epoch)
        bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {epoch + 1}/{self.cfg.trainer.epochs}",
                   disable=not self.cfg.trainer.progress, unit="step")
        tic, seen = time.perf_counter(), 0
        for i, batch in enumerate(DeviceFeed(self.loader, self.device)):  # batch n+1 copies during step n
            if i == self.steps_per_epoch:
                break
            self.bad_videos.update(batch["skipped"])  # counts, logs, stops above data.max_bad_fraction
            loss = self.train_step(batch)
            seen += batch["video"].shape[0]
            rate = seen / (time.perf_counter() - tic)
            bar.set_postfix(loss=f"{loss:.4f}", videos_s=f"{rate:.1f}")
            bar.update()
            if self.step % self.cfg.trainer.log_every == 0:
                self.logger.log({"train/loss": loss, "train/lr": self.scheduler.get_last_lr()[0],
                                 "train/videos_per_s": rate, "epoch": epoch}, self.step)
        bar.close()

    def train_step(self, batch: dict) -> float:
        frames = self.transform(batch["video"].to(self.device, non_blocking=True), self.dtype,
                                generator=self.crop_rng)  # [B, T, 3, S, S]
        input_ids = batch["input_ids"].to(self.device, non_blocking=True)  # [B, L]
        with autocast(self.device, self.dtype):
            text = self.model.encode_text(input_ids)
            video = self.model.encode_video(frames)
            loss = info_nce(text, video, self.model.logit_scale)
        self.scaler.scale(loss).backward()
        if self.cfg.optim.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.trainable, self.cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        return loss.item()

    def evaluate(self, epoch: int) -> dict:
        split = self.cfg.data.test_split
        metrics = prefixed(self.evaluator(self.model), split)
        self.logger.log({**metrics, "epoch": epoch}, self.step)
        log.info("epoch %d %s: %s", epoch, split,
                 ", ".join(f"{k.split('/')[-1]} {v:.2f}" for k, v in metrics.items()))
        return metrics

    def finish(self, metrics: dict) -> dict:
        split = self.cfg.data.test_split
        result = {**metrics, **self.data_report, **self.bad_videos.report(),
                  "trainable_params": self.count.trainable, "total_params": self.count.total,
                  f"{split}/num_videos": self.test_split.num_videos,
                  f"{split}/num_queries": self.test_split.num_captions,
                  f"{split}/chance_R@1": 100.0 / self.test_split.num_videos}
        save_metrics(self.run_dir, result)
        self.logger.summary(metrics)
        self.logger.close()
        log.info("text->video R@1 %.2f (chance %.2f); metrics in %s", metrics.get(f"{split}/t2v_R@1", float("nan")),
                 result[f"{split}/chance_R@1"], self.run_dir / "metrics.json")
        return result


def train(cfg: DictConfig) -> dict:
    return Trainer(cfg).fit()
