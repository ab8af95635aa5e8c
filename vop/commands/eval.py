"""`eval.py`: evaluate pretrained CLIP (method=zeroshot), a trained run (ckpt=...), or a released
OpenAI-format checkpoint (ckpt=file.pth with model= and method= naming its backbone and method)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig

from vop.config.check import check_config
from vop.engine import assembly
from vop.engine.checkpoint import read_checkpoint, resolve_path
from vop.engine.checkpoint_config import merge_checkpoint_config
from vop.engine.modelscope_folder import ModelScopeFolder, folder_config
from vop.engine.rundir import METRICS, link_latest, prefixed, run_summary, save_config, save_metrics, write_outputs
from vop.metrics.similarity_file import FILENAME as SIMILARITY
from vop.models.released import is_released
from vop.retrieval.html import write_page
from vop.retrieval.views import example_views

log = logging.getLogger(__name__)


def evaluate_run(cfg: DictConfig, overrides: Sequence[str] = ()) -> dict:
    if cfg.get("modelscope"):  # the authors' model folder: its checkpoint, method and settings
        cfg = folder_config(cfg, ModelScopeFolder.read(cfg.modelscope), overrides)
    tensors, released = None, bool(cfg.ckpt) and is_released(cfg.ckpt)
    if released:  # an OpenAI-format .pth (the VoP authors' files): the command line names model/method
        log.info("evaluating released checkpoint %s with model %s, method %s", cfg.ckpt, cfg.model.name,
                 cfg.method.name)
    elif cfg.ckpt:
        path = resolve_path(cfg.ckpt)
        tensors, saved = read_checkpoint(path)
        cfg = merge_checkpoint_config(cfg, saved, overrides, path)
        log.info("evaluating %s (model %s, method %s, data %s)", path, cfg.model.name, cfg.method.name, cfg.data.name)
    check_config(cfg, overrides)
    runtime = assembly.build_runtime(cfg)
    split_name = cfg.data.test_split
    splits = assembly.load_splits(cfg, split_name)
    _, split, _, report = assembly.usable_splits(cfg, None, splits[split_name])
    splits[split_name] = split
    parts = assembly.build_model_parts(cfg, cfg.ckpt, tensors)
    parts.model.to(runtime.device)
    evaluator = assembly.build_evaluator(cfg, split, parts, runtime, bank_split=splits.get(cfg.data.train_split))
    metrics = prefixed(evaluator(parts.model), split_name)
    run_dir = Path(cfg.paths.output_dir)
    save_config(run_dir, cfg)
    # the checkpoint's own path: `outputs/train/latest` moves with the next run
    ckpt = str(Path(cfg.ckpt).expanduser().resolve()) if cfg.ckpt else None
    result = {**metrics, **report, **run_summary(parts.count, splits, split_name), "ckpt": ckpt}
    write_outputs(run_dir, [(METRICS, lambda: save_metrics(run_dir, result)),  # a full disk: says so
                            (SIMILARITY, lambda: evaluator.save_similarity(run_dir / SIMILARITY, cfg.data.name))],
                  result)
    link_latest(run_dir, Path(cfg.paths.log_dir) / cfg.task)
    if cfg.get("examples"):
        page, _ = write_page(example_views(split, *evaluator.embeddings, parts.decoder, cfg.examples,
                                           cfg.examples_topk, similarity=parts.model.similarity),
                             run_dir / "examples.html", title=f"{cfg.method.name} on {cfg.data.name} {split_name}")
        print(f"{cfg.examples} example queries: {page} (and {page.with_suffix('.png').name})")
    log.info("%s: %s", split_name, ", ".join(f"{k.split('/', 1)[-1]} {v:.2f}" for k, v in metrics.items()))
    log.info("text->video R@1 %.2f (chance %.2f); metrics in %s", metrics.get(f"{split_name}/t2v_R@1", float("nan")),
             result[f"{split_name}/chance_R@1"], run_dir / "metrics.json")
    return metrics
