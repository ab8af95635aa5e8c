"""The training loop, top to bottom in plain PyTorch (DDP when launched with torchrun)."""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from vop.data.gpu_transforms import VideoTransform
from vop.engine import distributed, setup
from vop.engine.checkpoint import FILENAME, check_compatible, load_trainable, save_checkpoint, trainable_state
from vop.engine.device_feed import DeviceFeed
from vop.engine.loggers import RunLogger
from vop.engine.optim import build_optimizer, param_groups, warmup_steps, warn_if_too_slow
from vop.engine.precision import autocast, grad_scaler, resolve_device, resolve_precision
from vop.engine.resume import check_same_trajectory, load_resume, prune, save_resume
from vop.engine.rundir import (METRICS, OutputWriteError, link_latest, prefixed, save_config, save_metrics,
                               split_sizes, write_outputs)
from vop.engine.train_state import Progress, TrainState
from vop.engine.training_faults import DataLoadError, NonFiniteGuard, NonFiniteLossError, StopRequest
from vop.errors import ConfigError
from vop.losses import info_nce

log = logging.getLogger(__name__)
BEST_FILENAME = "best.safetensors"


class DualEncoder(nn.Module):
    """One forward for both towers: DDP synchronises gradients of what runs inside `forward`."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode_text(input_ids), self.model.encode_video(frames)  # [b, D], [b, D]


def item_generators(items: torch.Tensor, seed: int, epoch: int) -> list[torch.Generator]:
    """One crop/flip generator per dataset item, seeded by (seed, epoch, item): a video's
    augmentation is the same whichever rank, batch position or resumed run loads it."""
    states = [np.random.SeedSequence([seed, epoch, int(i), 1]).generate_state(1, dtype=np.uint64)[0]
              for i in items.tolist()]
    return [torch.Generator().manual_seed(int(s)) for s in states]


class Trainer:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        device = resolve_device(cfg.trainer.device)
        self.env = distributed.init_distributed(device)
        self.device = distributed.rank_device(device, self.env)
        if not self.env.is_main:
            logging.getLogger().setLevel(logging.WARNING)  # one console, rank 0's
        # Every rank writes (rank 0) or reads (resume) rank 0's directory.
        self.run_dir = Path(distributed.broadcast_object(str(cfg.paths.output_dir)))
        setup.configure_determinism(cfg.trainer.deterministic)
        setup.seed_everything(cfg.seed)
        setup.set_threads(cfg.trainer.num_threads)
        self.dtype = resolve_precision(cfg.trainer.precision, self.device)
        data = cfg.data
        # Annotations first: a missing dataset should fail in seconds, before weights load.
        # Rank 0 first: it may write the synthetic dataset that the others then read.
        with distributed.main_first():
            splits = setup.load_splits(cfg, data.train_split, data.test_split, self.select_split)
        self.model, self.tokenizer, self.method, self.count = setup.build_model(cfg)
        self.model.to(self.device)
        self.decoder = instantiate(cfg.decoder)
        self.splits = splits
        self.train_split, self.test_split, self.bad_videos, self.data_report = setup.usable_splits(
            cfg, splits[data.train_split], splits[data.test_split])  # docs/datasets.md "Bad videos"
        splits.update({data.train_split: self.train_split, data.test_split: self.test_split})
        self.evaluators = {}
        self.logger = RunLogger(self.run_dir, cfg, enabled=self.env.is_main)
        self.step = 0
        self.best: float | None = None
        self.best_test: dict = {}  # trainer.evals_per_epoch > 1: the best test evaluation (X-Pool's report)
        self.overflow_steps = 0
        self._loss_sum = self._loss_n = None  # device sums of the losses since the last log
        # Built by prepare_training(), once a run has something to train (zero-shot never needs them).
        self.loader = self.dataset = self.sampler = None
        self.steps_per_epoch = 0
        self.mid_epoch_evals: set[int] = set()  # steps after which trainer.evals_per_epoch > 1 evaluates
        self.optimizer = self.scheduler = self.scaler = None
        self.transform: VideoTransform | None = None
        self.trainable: list[nn.Parameter] = []
        self.guard: NonFiniteGuard | None = None
        self.state: TrainState | None = None
        self.net: nn.Module | None = None  # DualEncoder, DDP-wrapped under torchrun
        self.batch_in_epoch = 0  # batches of the current epoch done (where a resume checkpoint continues)

    @property
    def select_split(self) -> str:
        return self.cfg.trainer.checkpoint.best_split or self.cfg.data.test_split

    def evaluator(self, split: str):
        if split not in self.evaluators:
            self.evaluators[split] = setup.build_evaluator(self.cfg, self.splits[split], self.decoder, self.tokenizer,
                                                           self.device, self.dtype, self.model.image_size, self.env)
        return self.evaluators[split]

    # ------------------------------------------------------------------ setup of training
    def prepare_training(self) -> None:
        cfg = self.cfg
        self.loader, self.dataset, self.sampler = setup.train_loader(
            cfg, self.train_split, self.decoder, self.tokenizer, pin_memory=self.device.type == "cuda", env=self.env)
        self.steps_per_epoch = len(self.loader)
        if cfg.trainer.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, cfg.trainer.max_steps_per_epoch)
        # X-Pool's evaluation points: evals_per_epoch evenly spaced steps, the last one the epoch end.
        n = cfg.trainer.evals_per_epoch
        self.mid_epoch_evals = set(np.linspace(0, self.steps_per_epoch - 1, n + 1, dtype=int)[1:-1] + 1) \
            if n > 1 else set()
        if self.steps_per_epoch == 0:
            raise ConfigError(f"{self.train_split.num_captions} training pairs give no full batch of "
                              f"data.batch_size={cfg.data.batch_size}")
        groups = param_groups(self.model, self.method, cfg.method.lr, cfg.method.lr_new, cfg.optim.weight_decay,
                              decay_all=cfg.optim.decay_all)
        warn_if_too_slow(cfg.model, groups)
        self.optimizer = build_optimizer(instantiate(cfg.optim.optimizer), groups)
        total = self.steps_per_epoch * cfg.trainer.epochs
        self.scheduler = instantiate(cfg.scheduler.schedule)(
            self.optimizer, num_warmup_steps=warmup_steps(total, cfg.scheduler.warmup_ratio),
            num_training_steps=total)
        self.scaler = grad_scaler(self.device, self.dtype)
        # data.hflip: flip probability; datasets whose captions say left/right set 0 (default 0.5).
        self.transform = VideoTransform(size=self.model.image_size, train=True, hflip=cfg.data.get("hflip", 0.5))
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.guard = NonFiniteGuard(cfg.trainer.max_nonfinite_in_row)
        self.state = TrainState(self.optimizer, self.scheduler, self.scaler, self.guard)  # what resume restores
        self.net: nn.Module = DualEncoder(self.model)
        if self.env.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.net, device_ids=ids,
                                               find_unused_parameters=cfg.trainer.find_unused_parameters)

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict:
        cfg = self.cfg
        if self.env.is_main:
            save_config(self.run_dir, cfg)
        log.info("run directory: %s (%d process%s)", self.run_dir, self.env.world_size,
                 "es" if self.env.world_size > 1 else "")
        log.info("model %s, method %s", cfg.model.name, cfg.method.name)  # its trainable count: logged by apply()
        self.logger.summary({"trainable_params": self.count.trainable, "total_params": self.count.total})
        if self.count.trainable == 0:
            log.info("method %s has no trainable parameters: evaluating only", cfg.method.name)
            return self.finish(self.evaluate(epoch=0))
        self.prepare_training()
        epoch, start = self.maybe_resume()
        stop = StopRequest().install()
        try:
            metrics = self.run_epochs(epoch, start, stop)
        finally:
            stop.uninstall()
        if metrics is None:  # interrupted: the resume checkpoint is written, nothing else to do
            self.logger.close()
            return {"interrupted": True, "step": self.step}
        if self.guard.total >= self.step:  # every loss was NaN/inf: nothing was trained
            raise NonFiniteLossError(f"all {self.step} training steps had a non-finite loss and were skipped: no "
                                     "checkpoint or metrics written. Lower method.lr / method.lr_new or check the data")
        result = self.finish(metrics or self.evaluate(cfg.trainer.epochs), checkpoint=True)
        self.save_resume(cfg.trainer.epochs, 0)  # optional state, after the result and the checkpoint
        return result

    def run_epochs(self, first_epoch: int, start: int, stop: StopRequest) -> dict | None:
        """Train from (epoch, batch) `first_epoch, start` to the end; None if stopped early."""
        cfg, metrics = self.cfg, {}
        for epoch in range(first_epoch, cfg.trainer.epochs):
            if not self.train_epoch(epoch, start if epoch == first_epoch else 0, stop):
                return None
            last = epoch == cfg.trainer.epochs - 1
            selecting = cfg.trainer.checkpoint.best_metric is not None
            if cfg.trainer.eval_every_epoch or last or (selecting and self.select_split == cfg.data.test_split) \
                    or self.mid_epoch_evals:
                metrics = self.evaluate(epoch + 1)
            if selecting:
                self.update_best(epoch + 1, metrics)
            if not last:  # the last epoch's: after metrics.json and the checkpoint (fit)
                self.save_resume(epoch + 1, 0)
        return metrics

    def train_epoch(self, epoch: int, start: int, stop: StopRequest) -> bool:
        """Steps `start`.. of one epoch; False if a stop was requested (a resume checkpoint is then written)."""
        self.net.train()
        self.dataset.set_epoch(epoch)
        self.sampler.set_epoch(epoch, start=start * self.loader.batch_size)
        bar = tqdm(total=self.steps_per_epoch, initial=start, desc=f"epoch {epoch + 1}/{self.cfg.trainer.epochs}",
                   disable=not (self.cfg.trainer.progress and self.env.is_main), unit="step")
        try:
            return self.run_steps(epoch, start, stop, bar)
        except RuntimeError as err:
            # A dead worker is reported by a SIGCHLD handler wherever the main process happens to be.
            if "DataLoader worker" not in str(err):
                raise
            if stop.requested:  # Ctrl-C reached the workers too: they exit, the step position is intact
                return self.stop_here(epoch, stop)
            raise self.data_error(err, epoch) from err
        finally:
            bar.close()

    def run_steps(self, epoch: int, start: int, stop: StopRequest, bar: tqdm) -> bool:
        tic, seen = time.perf_counter(), 0
        batches = iter(DeviceFeed(self.loader, self.device))  # batch n+1 loads during step n
        self.batch_in_epoch = start
        for done in range(start + 1, self.steps_per_epoch + 1):
            batch = self.next_batch(batches, epoch)
            self.bad_videos.update(batch["skipped"])  # counts, logs, stops above data.max_bad_fraction
            self.train_step(batch, epoch)
            self.batch_in_epoch = done
            seen += self.cfg.data.batch_size  # global: every rank loaded its share
            bar.update()
            if self.step % self.cfg.trainer.log_every == 0:  # the loss is read from the GPU only here
                loss, rate = self.window_loss(), seen / (time.perf_counter() - tic)
                bar.set_postfix(loss=f"{loss:.4f}", videos_s=f"{rate:.1f}")
                self.log_train(loss, rate, epoch)
            if done in self.mid_epoch_evals:
                self.evaluate(epoch + done / self.steps_per_epoch)
            if self.should_stop(stop):
                return self.stop_here(epoch, stop)
            every = self.cfg.trainer.checkpoint.every_n_steps
            if every and self.step % every == 0 and done < self.steps_per_epoch:
                self.save_resume(epoch, done)
        return True

    def stop_here(self, epoch: int, stop: StopRequest) -> bool:
        self.save_resume(epoch, self.batch_in_epoch, required=True)  # a stopped run: its only output
        why = stop.signal_name or f"trainer.stop_after_steps={self.cfg.trainer.stop_after_steps}"
        log.warning("stopped at step %d (%s); continue with resume=%s", self.step, why, self.run_dir)
        return False

    def next_batch(self, batches, epoch: int) -> dict:
        try:
            return next(batches)
        except StopIteration:
            raise
        except Exception as err:  # a worker died or a video failed: name what was being read
            raise self.data_error(err, epoch) from err

    def data_error(self, err: Exception, epoch: int) -> DataLoadError:
        return DataLoadError(f"loading training data failed (epoch {epoch + 1}, step {self.step + 1}): {err}\n"
                             f"{self.loader.dataset.describe()}")

    def train_step(self, batch: dict, epoch: int) -> torch.Tensor:
        """One step -> its loss (a 0-d tensor on the device; reading it makes the host wait for the GPU)."""
        gens = item_generators(batch["item"], self.cfg.seed, epoch)  # "item" stays on the host (DeviceFeed)
        # DeviceFeed already put the batch on self.device.
        frames = self.transform(batch["video"], self.dtype, generator=gens, sizes=batch.get("frame_hw"))  # [b, T, 3, S, S]
        input_ids = batch["input_ids"]  # [b, L]
        with autocast(self.device, self.dtype):
            text, video = self.net(input_ids, frames)  # [b, D] each
            # The loss over the global batch [B, D]: every rank computes the same full matrix.
            loss = info_nce(distributed.gather_with_grad(text), distributed.gather_with_grad(video),
                            self.model.logit_scale)
        finite = distributed.all_ranks_true(torch.isfinite(loss.detach()))  # 0-d bool, same on every rank
        # Backward is queued before the host reads `finite` (the step's one sync), so the GPU is busy
        # with it meanwhile; every rank runs it, so none waits for another in DDP's all-reduce.
        self.scaler.scale(loss).backward()
        if finite.item():
            self.guard.check(0.0, self.step + 1)  # a finite step resets the guard's in-a-row count
            self.optimizer_step()
        else:  # skipped on every rank together
            own = loss.item()  # NaN/inf, or finite where another rank's loss was not
            self.guard.check(own if not math.isfinite(own) else float("nan"), self.step + 1)
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()  # skipped steps still advance: the schedule stays tied to the step count
        self.step += 1
        self.add_to_window(loss.detach(), finite)
        return loss.detach()

    def optimizer_step(self) -> None:
        """Clip, step, update the scaler; counts fp16 overflows on the device (read at log time)."""
        clip = self.cfg.optim.grad_clip
        if clip or self.scaler.is_enabled():
            self.scaler.unscale_(self.optimizer)
            # The norm is non-finite exactly when the GradScaler finds inf/NaN gradients and skips.
            norm = torch.nn.utils.clip_grad_norm_(self.trainable, clip or float("inf"))
            if self.scaler.is_enabled():
                overflow = (~torch.isfinite(norm)).int()
                self._overflow = overflow if self._overflow is None else self._overflow + overflow
        self.scaler.step(self.optimizer)
        self.scaler.update()

    @property
    def overflow_steps(self) -> int:
        """fp16 steps whose update the GradScaler skipped (gradients overflowed)."""
        return self._overflow_base + (int(self._overflow.item()) if self._overflow is not None else 0)

    @overflow_steps.setter
    def overflow_steps(self, value: int) -> None:
        self._overflow_base, self._overflow = int(value), None

    def add_to_window(self, loss: torch.Tensor, finite: torch.Tensor) -> None:
        """Sum the finite losses since the last log on the device (no host sync per step)."""
        kept = torch.where(finite, loss.float(), 0.0)
        if self._loss_sum is None:
            self._loss_sum, self._loss_n = kept, finite.int()
        else:
            self._loss_sum, self._loss_n = self._loss_sum + kept, self._loss_n + finite.int()

    def window_loss(self) -> float:
        """Mean finite loss since the last call (NaN if none), read from the device once."""
        if self._loss_sum is None:
            return float("nan")
        total, count = torch.stack([self._loss_sum, self._loss_n.float()]).tolist()
        self._loss_sum = self._loss_n = None
        return total / count if count else float("nan")

    def should_stop(self, stop: StopRequest) -> bool:
        limit = self.cfg.trainer.stop_after_steps
        return distributed.any_rank(stop.requested or bool(limit and self.step >= limit), self.device)

    def log_train(self, loss: float, rate: float, epoch: int) -> None:
        scalars = {"train/loss": loss, "train/lr": self.scheduler.get_last_lr()[0], "train/videos_per_s": rate,
                   "train/nonfinite_skipped": self.guard.total, "train/overflow_skipped": self.overflow_steps,
                   "epoch": epoch}
        if self.device.type == "cuda":
            scalars["train/gpu_mem_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        self.logger.log(scalars, self.step)

    # ------------------------------------------------------------------ evaluation and checkpoints
    def evaluate(self, epoch: int, split: str | None = None) -> dict:
        split = split or self.cfg.data.test_split
        metrics = prefixed(self.evaluator(split)(self.model), split)
        self.logger.log({**metrics, "epoch": epoch}, self.step)
        key = f"{split}/t2v_R@1"
        if self.cfg.trainer.evals_per_epoch > 1 and split == self.cfg.data.test_split and \
                metrics[key] > self.best_test.get(f"{split}/best_t2v_R@1", -1.0):
            self.best_test = {**{f"{split}/best_{k.split('/')[-1]}": v for k, v in metrics.items()},
                              f"{split}/best_step": self.step}
        log.info("epoch %d %s: %s", epoch, split,
                 ", ".join(f"{k.split('/')[-1]} {v:.2f}" for k, v in metrics.items()))
        return metrics

    def update_best(self, epoch: int, metrics: dict) -> None:
        opts = self.cfg.trainer.checkpoint
        key = f"{self.select_split}/{opts.best_metric}"
        if key not in metrics:
            metrics = {**metrics, **self.evaluate(epoch, self.select_split)}
        if key not in metrics:
            raise KeyError(f"trainer.checkpoint.best_metric={opts.best_metric}: no {key} among {sorted(metrics)}")
        value = metrics[key]
        better = self.best is None or (value > self.best if opts.best_mode == "max" else value < self.best)
        if better:
            self.best = value
            if self.env.is_main:
                save_checkpoint(self.run_dir / BEST_FILENAME, self.model, self.cfg,
                                {"epoch": epoch, "step": self.step, "metric": key, "value": value})
            log.info("new best %s = %.2f at epoch %d: %s", key, value, epoch, self.run_dir / BEST_FILENAME)

    def save_resume(self, epoch: int, batch_in_epoch: int, required: bool = False) -> None:
        """Everything to continue at (epoch, batch_in_epoch); rank 0 writes, the others wait. Optional
        state: a failed write (a full disk) is a WARNING and the run goes on, unless `required` (a
        stopped run, whose only output it is)."""
        try:
            if self.env.is_main:
                state = self.state.state_dict(Progress(epoch, batch_in_epoch, self.step, self.overflow_steps,
                                                       self.best, self.best_test, self.env.world_size))
                try:
                    path = save_resume(self.run_dir, self.step, trainable_state(self.model), state, self.cfg)
                except OSError as err:
                    if required:
                        raise OutputWriteError(self.run_dir, f"the resume state of step {self.step}", err, [], [],
                                               {}) from None
                    log.warning("could not write the resume state of step %d into %s (%s): the run goes on "
                                "without it", self.step, self.run_dir, err)
                    return
                prune(self.run_dir, self.cfg.trainer.checkpoint.keep_last)
                log.info("resume checkpoint: %s", path)
        finally:
            distributed.barrier()  # every rank, also when rank 0's write failed

    def maybe_resume(self) -> tuple[int, int]:
        """(epoch, batch in epoch) to start from: (0, 0), or where the `resume=` checkpoint stopped."""
        if not self.cfg.get("resume"):
            return 0, 0
        tensors, state, saved, path = load_resume(self.cfg.resume)
        check_compatible(saved, self.cfg, path)
        check_same_trajectory(saved, self.cfg, path)
        load_trainable(self.model, tensors, path)
        progress = self.state.load_state_dict(state)
        self.step, self.overflow_steps, self.best = progress.step, progress.overflow_steps, progress.best
        self.best_test = progress.best_test
        log.info("resumed from %s: epoch %d, batch %d, step %d", path, progress.epoch + 1, progress.batch_in_epoch,
                 self.step)
        return progress.epoch, progress.batch_in_epoch

    def finish(self, metrics: dict, checkpoint: bool = False) -> dict:
        """The run's result: metrics.json first, then (a trained run) the checkpoint, each atomically;
        a write that fails says what was saved and what was not, and the metrics themselves."""
        split = self.cfg.data.test_split
        result = {**metrics, **self.best_test, **self.data_report, **self.bad_videos.report(),
                  "trainable_params": self.count.trainable, "total_params": self.count.total,
                  **split_sizes(self.splits),
                  f"{split}/num_queries": self.test_split.num_captions,
                  f"{split}/chance_R@1": 100.0 / self.test_split.num_videos}
        if self.count.trainable:
            result.update({"train/nonfinite_skipped": self.guard.total, "train/overflow_skipped": self.overflow_steps,
                           "train/steps": self.step})
        if self.env.is_main:
            writes = [(METRICS, lambda: save_metrics(self.run_dir, result))]
            if checkpoint:
                extra = {"epoch": self.cfg.trainer.epochs, "step": self.step}
                writes.append((FILENAME, lambda: save_checkpoint(self.run_dir / FILENAME, self.model, self.cfg, extra)))
            write_outputs(self.run_dir, writes, result)
            link_latest(self.run_dir, Path(self.cfg.paths.log_dir) / self.cfg.task)  # <log dir>/train/latest
        self.logger.summary(result)
        self.logger.close()
        log.info("text->video R@1 %.2f (chance %.2f); metrics in %s", metrics.get(f"{split}/t2v_R@1", float("nan")),
                 result[f"{split}/chance_R@1"], self.run_dir / "metrics.json")
        return result
