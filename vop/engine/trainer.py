"""The training loop, top to bottom in plain PyTorch (DDP when launched with torchrun).

`assembly.build_trainer(cfg)` assembles a run (vop/engine/assembly.py) and hands the parts to `Trainer`,
which reads no config group but its own `trainer` settings. `Trainer.train_epochs` is the loop:
data in, forward, loss, backward, clip, step, log, evaluate, save, with the faults (a dead data
worker, a stop signal, non-finite losses) handled where they happen.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from vop.engine import distributed
from vop.engine.checkpoint import FILENAME, check_compatible, load_trainable, save_checkpoint, trainable_state
from vop.engine.device_feed import DeviceFeed
from vop.engine.evaluator import Evaluator
from vop.engine.loggers import RunLogger
from vop.engine.precision import autocast
from vop.engine.resume import check_same_trajectory, load_resume, prune, save_resume
from vop.engine.run_parts import ModelParts, RunData, RunFiles, Runtime, TrainingParts
from vop.engine.rundir import (METRICS, OutputWriteError, link_latest, prefixed, run_summary, save_config,
                               save_metrics, write_outputs)
from vop.engine.train_state import Progress
from vop.engine.training_faults import DataLoadError, NonFiniteLossError, StopRequest
from vop.file_writes import failure_reason
from vop.losses import info_nce, info_nce_scores
from vop.metrics.similarity_file import FILENAME as SIMILARITY

log = logging.getLogger(__name__)
BEST_FILENAME = "best.safetensors"


def item_generators(items: torch.Tensor, seed: int, epoch: int) -> list[torch.Generator]:
    """One crop/flip generator per dataset item, seeded by (seed, epoch, item): a video's
    augmentation is the same whichever rank, batch position or resumed run loads it."""
    states = [np.random.SeedSequence([seed, epoch, int(i), 1]).generate_state(1, dtype=np.uint64)[0]
              for i in items.tolist()]
    return [torch.Generator().manual_seed(int(s)) for s in states]


class Trainer:
    def __init__(self, files: RunFiles, runtime: Runtime, parts: ModelParts, data: RunData,
                 training: TrainingParts | None, evaluator: Callable[[str], Evaluator], logger: RunLogger):
        self.settings = files.cfg.trainer
        self.files, self.runtime, self.parts, self.data, self.training = files, runtime, parts, data, training
        self.model, self.device, self.dtype, self.env = parts.model, runtime.device, runtime.dtype, runtime.env
        self.build_evaluator, self.evaluators = evaluator, {}
        self.logger = logger
        self.select_split = self.settings.checkpoint.best_split or data.test_name
        steps = training.steps_per_epoch if training else 0
        # X-Pool's evaluation points: evals_per_epoch evenly spaced steps, the last one the epoch end.
        n = self.settings.evals_per_epoch
        self.mid_epoch_evals = set(np.linspace(0, steps - 1, n + 1, dtype=int)[1:-1] + 1) if n > 1 else set()
        self.step = 0
        self.batch_in_epoch = 0  # batches of the current epoch done (where a resume checkpoint continues)
        self.best: float | None = None
        self.best_test: dict = {}  # trainer.evals_per_epoch > 1: the best test evaluation (X-Pool's report)
        self.overflow_steps = 0
        self._loss_sum = self._loss_n = None  # device sums of the losses since the last log

    def evaluator(self, split: str) -> Evaluator:
        if split not in self.evaluators:
            self.evaluators[split] = self.build_evaluator(split)
        return self.evaluators[split]

    # ------------------------------------------------------------------ the run
    def fit(self) -> dict:
        if self.env.is_main:
            save_config(self.files.run_dir, self.files.cfg)
        log.info("run directory: %s (%d process%s)", self.files.run_dir, self.env.world_size,
                 "es" if self.env.world_size > 1 else "")
        count = self.parts.count
        self.logger.summary({"trainable_params": count.trainable, "total_params": count.total})
        if self.training is None:
            log.info("method %s has no trainable parameters: evaluating only", self.files.method)
            return self.finish(self.evaluate(epoch=0))
        epoch, start = self.maybe_resume()
        stop = StopRequest().install()
        try:
            metrics = self.train_epochs(epoch, start, stop)
        finally:
            stop.uninstall()
        if metrics is None:  # interrupted: the resume checkpoint is written, nothing else to do
            self.logger.close()
            return {"interrupted": True, "step": self.step}
        if self.training.guard.total >= self.step:  # every loss was NaN/inf: nothing was trained
            raise NonFiniteLossError(f"all {self.step} training steps had a non-finite loss and were skipped: no "
                                     "checkpoint or metrics written. Lower method.lr / method.lr_new or check the data")
        result = self.finish(metrics or self.evaluate(self.settings.epochs), checkpoint=True)
        self.save_resume(self.settings.epochs, 0)  # optional state, after the result and the checkpoint
        return result

    def train_epochs(self, first_epoch: int, start: int, stop: StopRequest) -> dict | None:
        """The loop: from (epoch, batch) `first_epoch, start` to the end; None if stopped early."""
        s, t, metrics = self.settings, self.training, {}
        for epoch in range(first_epoch, s.epochs):
            start = start if epoch == first_epoch else 0
            t.net.train()
            t.dataset.set_epoch(epoch)
            t.sampler.set_epoch(epoch, start=start * t.loader.batch_size)
            bar = tqdm(total=t.steps_per_epoch, initial=start, desc=f"epoch {epoch + 1}/{s.epochs}", unit="step",
                       disable=not (s.progress and self.env.is_main))
            batches = iter(DeviceFeed(t.loader, self.device))  # batch n+1 loads during step n
            tic, seen, self.batch_in_epoch = time.perf_counter(), 0, start
            try:
                for done in range(start + 1, t.steps_per_epoch + 1):
                    batch = self.next_batch(batches, epoch)  # a failed video or a dead worker: named
                    self.data.bad_videos.update(batch["skipped"])  # counts, logs, stops above data.max_bad_fraction
                    self.train_step(batch, epoch)  # forward, loss, backward, clip, step
                    self.batch_in_epoch, seen = done, seen + t.global_batch  # global: every rank loaded its share
                    bar.update()
                    if self.step % s.log_every == 0:  # the loss is read from the GPU only here
                        loss, rate = self.window_loss(), seen / (time.perf_counter() - tic)
                        bar.set_postfix(loss=f"{loss:.4f}", videos_s=f"{rate:.1f}")
                        self.log_train(loss, rate, epoch)
                    if done in self.mid_epoch_evals:
                        self.evaluate(epoch + done / t.steps_per_epoch)
                    if self.should_stop(stop):
                        return self.stop_here(epoch, stop)
                    every = s.checkpoint.every_n_steps
                    if every and self.step % every == 0 and done < t.steps_per_epoch:
                        self.save_resume(epoch, done)
            except RuntimeError as err:  # a dead worker, reported wherever the main process happens to be
                if "DataLoader worker" not in str(err):
                    raise
                if stop.requested:  # Ctrl-C reached the workers too: they exit, the step position is intact
                    return self.stop_here(epoch, stop)
                raise self.data_error(err, epoch) from err
            finally:
                bar.close()
            metrics = self.end_of_epoch(epoch, metrics)
        return metrics

    def end_of_epoch(self, epoch: int, metrics: dict) -> dict:
        """Evaluate where asked, keep the best checkpoint, save the resume state (the last epoch's
        comes after metrics.json and the checkpoint: `fit`)."""
        s = self.settings
        last = epoch == s.epochs - 1
        selecting = s.checkpoint.best_metric is not None
        if s.eval_every_epoch or last or (selecting and self.select_split == self.data.test_name) \
                or self.mid_epoch_evals:
            metrics = self.evaluate(epoch + 1)
        if selecting:
            self.update_best(epoch + 1, metrics)
        if not last:
            self.save_resume(epoch + 1, 0)
        return metrics

    def train_step(self, batch: dict, epoch: int) -> torch.Tensor:
        """One step -> its loss (a 0-d tensor on the device; reading it makes the host wait for the GPU)."""
        t = self.training
        gens = item_generators(batch["item"], t.seed, epoch)  # "item" stays on the host (DeviceFeed)
        # DeviceFeed already put the batch on the device.
        frames = t.transform(batch["video"], self.dtype, generator=gens, sizes=batch.get("frame_hw"))  # [b, T, 3, S, S]
        with autocast(self.device, self.dtype):
            text, video = t.net(batch["input_ids"], frames)  # [b, D] each (video [b, T, D]: X-Pool)
            # The loss over the global batch [B, D]: every rank computes the same full matrix.
            text, video = distributed.gather_with_grad(text), distributed.gather_with_grad(video)
            if video.ndim == 3:  # text-conditioned pooling: each caption pools each video of the batch
                loss = info_nce_scores(self.model.similarity(text, video), self.model.logit_scale)
            else:
                loss = info_nce(text, video, self.model.logit_scale)
        finite = distributed.all_ranks_true(torch.isfinite(loss.detach()))  # 0-d bool, same on every rank
        # Backward is queued before the host reads `finite` (the step's one sync), so the GPU is busy
        # with it meanwhile; every rank runs it, so none waits for another in DDP's all-reduce.
        t.scaler.scale(loss).backward()
        if finite.item():
            t.guard.check(0.0, self.step + 1)  # a finite step resets the guard's in-a-row count
            self.clip_and_step()
        else:  # skipped on every rank together
            own = loss.item()  # NaN/inf, or finite where another rank's loss was not
            t.guard.check(own if not math.isfinite(own) else float("nan"), self.step + 1)
        t.optimizer.zero_grad(set_to_none=True)
        t.scheduler.step()  # skipped steps still advance: the schedule stays tied to the step count
        self.step += 1
        self.add_to_window(loss.detach(), finite)
        return loss.detach()

    def clip_and_step(self) -> None:
        """Clip, step, update the scaler; counts fp16 overflows on the device (read at log time)."""
        t = self.training
        clip = t.grad_clip
        if clip or t.scaler.is_enabled():
            t.scaler.unscale_(t.optimizer)
            # The norm is non-finite exactly when the GradScaler finds inf/NaN gradients and skips.
            norm = torch.nn.utils.clip_grad_norm_(t.trainable, clip or float("inf"))
            if t.scaler.is_enabled():
                overflow = (~torch.isfinite(norm)).int()
                self._overflow = overflow if self._overflow is None else self._overflow + overflow
        t.scaler.step(t.optimizer)
        t.scaler.update()

    # ------------------------------------------------------------------ faults and stops
    def next_batch(self, batches, epoch: int) -> dict:
        try:
            return next(batches)
        except StopIteration:
            raise
        except Exception as err:  # a worker died or a video failed: name what was being read
            raise self.data_error(err, epoch) from err

    def data_error(self, err: Exception, epoch: int) -> DataLoadError:
        return DataLoadError(f"loading training data failed (epoch {epoch + 1}, step {self.step + 1}): {err}\n"
                             f"{self.training.loader.dataset.describe()}")

    def should_stop(self, stop: StopRequest) -> bool:
        limit = self.settings.stop_after_steps
        return distributed.any_rank(stop.requested or bool(limit and self.step >= limit), self.device)

    def stop_here(self, epoch: int, stop: StopRequest) -> None:
        """Write the resume state where the run stands (a stopped run's only output); None: stopped."""
        self.save_resume(epoch, self.batch_in_epoch, required=True)
        why = stop.signal_name or f"trainer.stop_after_steps={self.settings.stop_after_steps}"
        log.warning("stopped at step %d (%s); continue with resume=%s", self.step, why, self.files.run_dir)
        return None

    # ------------------------------------------------------------------ logging
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

    def log_train(self, loss: float, rate: float, epoch: int) -> None:
        scalars = {"train/loss": loss, "train/lr": self.training.scheduler.get_last_lr()[0],
                   "train/videos_per_s": rate, "train/nonfinite_skipped": self.training.guard.total,
                   "train/overflow_skipped": self.overflow_steps, "epoch": epoch}
        if self.device.type == "cuda":
            scalars["train/gpu_mem_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        self.logger.log(scalars, self.step)

    # ------------------------------------------------------------------ evaluation and checkpoints
    def evaluate(self, epoch: int, split: str | None = None) -> dict:
        split = split or self.data.test_name
        metrics = prefixed(self.evaluator(split)(self.model), split)
        self.logger.log({**metrics, "epoch": epoch}, self.step)
        key = f"{split}/t2v_R@1"
        if self.settings.evals_per_epoch > 1 and split == self.data.test_name and \
                metrics[key] > self.best_test.get(f"{split}/best_t2v_R@1", -1.0):
            self.best_test = {**{f"{split}/best_{k.split('/', 1)[-1]}": v for k, v in metrics.items()},
                              f"{split}/best_step": self.step}
        log.info("epoch %d %s: %s", epoch, split,
                 ", ".join(f"{k.split('/', 1)[-1]} {v:.2f}" for k, v in metrics.items()))
        return metrics

    def update_best(self, epoch: int, metrics: dict) -> None:
        opts = self.settings.checkpoint
        key = f"{self.select_split}/{opts.best_metric}"
        if key not in metrics:
            metrics = {**metrics, **self.evaluate(epoch, self.select_split)}
        if key not in metrics:
            raise KeyError(f"trainer.checkpoint.best_metric={opts.best_metric}: no {key} among {sorted(metrics)}")
        value = metrics[key]
        better = self.best is None or (value > self.best if opts.best_mode == "max" else value < self.best)
        if better:
            self.best = value
            path = self.files.run_dir / BEST_FILENAME
            if self.env.is_main:
                save_checkpoint(path, self.model, self.files.cfg,
                                {"epoch": epoch, "step": self.step, "metric": key, "value": value})
            log.info("new best %s = %.2f at epoch %d: %s", key, value, epoch, path)

    def save_resume(self, epoch: int, batch_in_epoch: int, required: bool = False) -> None:
        """Everything to continue at (epoch, batch_in_epoch); rank 0 writes, the others wait. Optional
        state: a failed write (a full disk) is a WARNING and the run goes on, unless `required` (a
        stopped run, whose only output it is)."""
        run_dir = self.files.run_dir
        try:
            if self.env.is_main:
                state = self.training.state.state_dict(Progress(epoch, batch_in_epoch, self.step, self.overflow_steps,
                                                                self.best, self.best_test, self.env.world_size))
                try:
                    path = save_resume(run_dir, self.step, trainable_state(self.model), state, self.files.cfg)
                except OSError as err:
                    if required:
                        raise OutputWriteError(run_dir, f"the resume state of step {self.step}", err, [], [],
                                               {}) from None
                    log.warning("could not write the resume state of step %d into %s: %s; the run goes on "
                                "without it", self.step, run_dir, failure_reason(err))
                    return
                prune(run_dir, self.settings.checkpoint.keep_last)
                log.info("resume checkpoint: %s", path)
        finally:
            distributed.barrier()  # every rank, also when rank 0's write failed

    def maybe_resume(self) -> tuple[int, int]:
        """(epoch, batch in epoch) to start from: (0, 0), or where the `resume=` checkpoint stopped."""
        if not self.files.resume:
            return 0, 0
        tensors, state, saved, path = load_resume(self.files.resume)
        check_compatible(saved, self.files.cfg, path)
        check_same_trajectory(saved, self.files.cfg, path)
        load_trainable(self.model, tensors, path)
        progress = self.training.state.load_state_dict(state)
        self.step, self.overflow_steps, self.best = progress.step, progress.overflow_steps, progress.best
        self.best_test = progress.best_test
        log.info("resumed from %s: epoch %d, batch %d, step %d", path, progress.epoch + 1, progress.batch_in_epoch,
                 self.step)
        return progress.epoch, progress.batch_in_epoch

    def finish(self, metrics: dict, checkpoint: bool = False) -> dict:
        """The run's result: metrics.json first, then (a trained run) the checkpoint, each atomically;
        a write that fails says what was saved and what was not, and the metrics themselves."""
        data, count, run_dir = self.data, self.parts.count, self.files.run_dir
        split = data.test_name
        result = {**metrics, **self.best_test, **data.report, **data.bad_videos.report(),
                  **run_summary(count, data.splits, split)}
        if self.training is not None:
            result.update({"train/nonfinite_skipped": self.training.guard.total,
                           "train/overflow_skipped": self.overflow_steps, "train/steps": self.step})
        if self.env.is_main:
            writes = [(METRICS, lambda: save_metrics(run_dir, result))]
            if checkpoint:
                extra = {"epoch": self.settings.epochs, "step": self.step}
                writes.append((FILENAME, lambda: save_checkpoint(run_dir / FILENAME, self.model, self.files.cfg, extra)))
            evaluator = self.evaluators.get(split)  # its last evaluation gave `metrics`
            if evaluator is not None and evaluator.similarity is not None:  # after the checkpoint: less valuable
                writes.append((SIMILARITY, lambda: evaluator.save_similarity(run_dir / SIMILARITY,
                                                                             self.files.cfg.data.name)))
            write_outputs(run_dir, writes, result)
            link_latest(run_dir, self.files.latest_dir)  # <log dir>/train/latest
        self.logger.summary(result)
        self.logger.close()
        log.info("text->video R@1 %.2f (chance %.2f); metrics in %s", metrics.get(f"{split}/t2v_R@1", float("nan")),
                 result[f"{split}/chance_R@1"], run_dir / "metrics.json")
        return result
