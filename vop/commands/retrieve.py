"""`retrieve.py`: build a gallery (`action=build`), bring it up to date (`action=update`), query one (`query=...`),
serve it (`action=serve`) or measure moment retrieval on a moment gallery (`action=evaluate`)."""
from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Sequence

from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, open_dict

from vop.config.check import check_config
from vop.data.shots import require_scenedetect
from vop.data.split import Split
from vop.data.split_checks import checked_test_split
from vop.engine import assembly, distributed
from vop.engine.checkpoint import read_checkpoint, resolve_path
from vop.engine.checkpoint_config import chosen_on_command_line, merge_checkpoint_config
from vop.engine.distributed import DistEnv
from vop.engine.precision import resolve_device
from vop.errors import InputError
from vop.models.released import is_released
from vop.retrieval.folder import folder_split
from vop.retrieval.gallery import Gallery, build_gallery, check_gallery_folder
from vop.retrieval.gallery_shards import Manifest, build_shards, load_gallery
from vop.retrieval.gallery_update import update_gallery
from vop.retrieval.html import write_page
from vop.retrieval.moment_eval import evaluate_localisation, evaluate_moments
from vop.retrieval.moments import check_moment_options, moment_split
from vop.retrieval.pipeline import RetrievalPipeline, RetrievalResult
from vop.retrieval.query_encoder import Encoder
from vop.retrieval.views import result_view
from vop.run_lock import launched_by_torchrun

log = logging.getLogger(__name__)
# A sharded build's ranks meet once, when every shard is written: the first may wait hours for the slowest.
BUILD_TIMEOUT = timedelta(days=7)


def build(cfg: DictConfig, overrides: Sequence[str] = ()) -> Gallery | Manifest | None:
    """Encode a dataset split (data=, split=) or a folder (videos=, captions=) into cfg.gallery: one file, or
    under torchrun (several processes) or with shards=K, shards and a manifest (vop/retrieval/gallery_shards.py).

    Returns the gallery, or the manifest (rank 0; None on the other ranks)."""
    check_gallery_folder(cfg.gallery)
    window, stride, shots = moment_options(cfg)
    didemo = cfg.moments.split == "didemo"
    env = join_build_group(cfg)
    cfg, encoder = command_encoder(cfg, overrides)
    with distributed.main_first():  # rank 0 may write the synthetic dataset that the others then read
        split = listed_split(cfg)
    log.info("building gallery %s from %d videos and %d captions with %s", cfg.gallery, split.num_videos,
             split.num_captions, encoder.describe())
    if window is not None or shots is not None or didemo:  # each window (shot) of a video is a row: retrieval/moments.py
        split = moment_split(split, encoder.decoder, window, stride, shots, didemo, cfg.max_bad_fraction, cfg.strict,
                             f"gallery={cfg.gallery}")
        log.info("moments: %d %s", split.num_videos, "DiDeMo candidate moments" if didemo else
                 f"windows of {window:g} s every {stride:g} s" if shots is None
                 else "shots" + (f" (cut into windows of {window:g} s every {stride:g} s)" if window else ""))
    options = {"chunk_videos": cfg.chunk_videos, "progress": cfg.trainer.progress and env.is_main,
               "max_bad_fraction": cfg.max_bad_fraction, "strict": cfg.strict}
    if env.world_size == 1 and not cfg.shards:
        return build_gallery(encoder, split, cfg.gallery, **options)
    try:
        return build_shards(encoder, split, cfg.gallery, cfg.shards or env.world_size, env.rank, env.world_size,
                            **options)
    finally:
        distributed.cleanup()


def join_build_group(cfg: DictConfig) -> DistEnv:
    """Under torchrun: this process's rank in a gloo group (only a barrier crosses it), its GPU cuda:LOCAL_RANK;
    the group waits for the slowest rank's shards however long they take. Only rank 0 logs below WARNING."""
    if not launched_by_torchrun():
        return DistEnv()
    env = distributed.init_distributed(resolve_device(cfg.trainer.device), backend="gloo", timeout=BUILD_TIMEOUT)
    if not env.is_main:
        logging.getLogger().setLevel(logging.WARNING)
    return env


def update(cfg: DictConfig, overrides: Sequence[str] = ()) -> Gallery:
    """Bring cfg.gallery up to date with its split or folder: encode new and changed videos, drop deleted ones.

    The encoder is the gallery's own (with its data= unless the command line names one), or the one ckpt=,
    model= or method= name as a build does; either must be the gallery's."""
    check_gallery_folder(cfg.gallery)
    gallery = load_gallery(cfg.gallery)
    if gallery.spans is not None or cfg.moments.window is not None or cfg.moments.split == "shots":
        raise InputError(f"gallery={cfg.gallery}: action=update keeps whole-video galleries up to date; a moment "
                         "gallery (moments.window=...) is rebuilt: python retrieve.py action=build with the same "
                         "arguments (finished chunks of an interrupted build are reused)")
    if cfg.ckpt or any(chosen_on_command_line(overrides, g) for g in ("model", "method")):
        cfg, encoder = command_encoder(cfg, overrides)
    else:
        stored = gallery.encoder_config()
        encoder = Encoder(stored, ckpt=gallery.encoder.get("ckpt"))
        if not chosen_on_command_line(overrides, "data"):
            cfg = cfg.copy()
            with open_dict(cfg):
                cfg.data = stored.data
    gallery.check(encoder, cfg.gallery)  # before any video is listed or decoded
    split = listed_split(cfg)
    log.info("updating gallery %s (%d videos) from %d videos and %d captions with %s", cfg.gallery,
             len(gallery.video_ids), split.num_videos, split.num_captions, encoder.describe())
    return update_gallery(encoder, split, cfg.gallery, cfg.chunk_videos, cfg.trainer.progress, cfg.max_bad_fraction,
                          cfg.strict)


def command_encoder(cfg: DictConfig, overrides: Sequence[str] = ()) -> tuple[DictConfig, Encoder]:
    """The encoder the command line names: ckpt= (a run, whose groups join cfg, or a released checkpoint), else
    model= method=; with cfg as it then stands."""
    if cfg.ckpt and is_released(cfg.ckpt):  # an authors' .pth (VoP, DGL): the command line names model/method
        log.info("building with released checkpoint %s, model %s, method %s", cfg.ckpt, cfg.model.name,
                 cfg.method.name)
        check_config(cfg, overrides)
    elif cfg.ckpt:
        path = resolve_path(cfg.ckpt)
        cfg = merge_checkpoint_config(cfg, read_checkpoint(path, tensors=False)[1], overrides, path)
        check_config(cfg, overrides)
    return cfg, Encoder(cfg, ckpt=cfg.ckpt)


def moment_options(cfg: DictConfig) -> tuple[float | None, float | None, float | None]:
    """(window, stride, shot threshold) of a moment build, all None for whole videos; stride defaults to half
    the window; the threshold is None unless moments.split=shots (PySceneDetect, checked installed here)."""
    window, stride = cfg.moments.window, cfg.moments.stride
    if window is not None and stride is None:
        stride = window / 2
    check_moment_options(window, stride)
    if cfg.moments.split == "didemo" and window is not None:
        raise InputError(f"moments.split=didemo makes DiDeMo's 21 candidate moments of each video: leave out "
                         f"moments.window={window}")
    if cfg.moments.split != "shots":
        return window, stride, None
    require_scenedetect()
    return window, stride, float(cfg.moments.shot_threshold)


def listed_split(cfg: DictConfig) -> Split:
    """The videos and captions to encode: a folder (videos=, captions=) or a dataset split (data=, split=)."""
    if cfg.videos:
        return folder_split(cfg.videos, cfg.captions)
    name = cfg.split or cfg.data.test_split
    return checked_test_split(assembly.load_splits(cfg, name)[name])


def pipeline_of(cfg: DictConfig, overrides: Sequence[str] = ()) -> RetrievalPipeline:
    """The encoder and gallery a query or the server uses (loaded once)."""
    index = instantiate(cfg.index)
    if cfg.get("modelscope"):  # the authors' model folder: its model and its precomputed gallery
        topk = {"topk": cfg.topk} if chosen_on_command_line(overrides, "topk") else {}
        return RetrievalPipeline.from_modelscope(cfg.modelscope, list(overrides), cfg=cfg, index=index, **topk)
    kwargs = dict(index=index, topk=cfg.topk, rerank_k=cfg.rerank_k, nms_iou=cfg.moments.nms_iou,
                  per_video=cfg.moments.per_video)
    if cfg.ckpt:
        return RetrievalPipeline.from_run(cfg.ckpt, cfg.gallery, **kwargs)
    return RetrievalPipeline.from_gallery(cfg.gallery, **kwargs)


def query(cfg: DictConfig, overrides: Sequence[str] = ()) -> list[RetrievalResult]:
    """Rank the gallery for each query (a text, or a video file path); print, optionally write a page."""
    queries = list(cfg.query) if isinstance(cfg.query, ListConfig) else [cfg.query]
    if cfg.query is None or not queries or any(not str(q).strip() for q in queries):
        raise InputError(f"retrieve.py: query={'' if cfg.query is None else cfg.query} is empty; give a text "
                         "(query=\"a red circle moves to the left\"), a video file, or a list: query=[a,b]")
    pipeline = pipeline_of(cfg, overrides)
    results = [pipeline(str(q)) for q in queries]
    for result in results:
        print(result)
    if cfg.html:
        views = [result_view(r, pipeline.gallery, pipeline.encoder.decoder, cfg.thumb_frames) for r in results]
        html, png = write_page(views, cfg.html)
        print(f"result page: {html} (contact sheet {png})")
    return results


def serve(cfg: DictConfig, overrides: Sequence[str] = ()) -> None:
    """The search page and its JSON API over one loaded pipeline, until Ctrl-C (vop/retrieval/server.py)."""
    from vop.retrieval import server  # imported on use: the ASGI stack only for action=serve

    s = cfg.serve
    server.check_host(s.host, s.allow_remote)  # before the model and the gallery load
    server.serve(pipeline_of(cfg, overrides), s.host, s.port, s.allow_remote, list(s.allowed_hosts), s.max_upload_mb,
                 s.upload_timeout_s, cfg.thumb_frames)


def evaluate(cfg: DictConfig, overrides: Sequence[str] = ()) -> dict[str, float]:
    """Video-corpus moment retrieval over a moment gallery's own captions (vop/retrieval/moment_eval.py):
    R@k at temporal IoU 0.5 and 0.7, each beside its chance."""
    gallery = load_gallery(cfg.gallery)  # one file or a sharded gallery's manifest
    metrics, chance = evaluate_moments(gallery, cfg.moments.nms_iou)  # no per-video cap: the corpus protocol
    queries = sum(s is not None for s in gallery.caption_spans or [])
    print(f"VCMR over {cfg.gallery}: {queries} captions, {len(gallery.video_ids)} moments of "
          f"{len(gallery.video_rows)} videos (moments.nms_iou={cfg.moments.nms_iou}; chance: the moments in a "
          "random order)")
    for name, value in metrics.items():
        print(f"vcmr/{name} {value:.2f} (chance {chance[name]:.2f})")
    out = {f"vcmr/{k}": v for k, v in metrics.items()}
    if (gallery.moments or {}).get("split") == "didemo":  # DiDeMo's candidates: localisation in the caption's video
        local, chance = evaluate_localisation(gallery)
        print("DiDeMo moment localisation (its authors' Rank@1, Rank@5, mIoU; chance: random candidate orders)")
        for name, value in local.items():
            print(f"didemo/{name} {value:.2f} (chance {chance[name]:.2f})")
        out.update({f"didemo/{k}": v for k, v in local.items()})
    return out


ACTIONS = {"build": build, "update": update, "query": query, "serve": serve, "evaluate": evaluate}


def retrieve(cfg: DictConfig, overrides: Sequence[str] = ()):
    action = cfg.action or ("query" if cfg.query is not None else None)
    check_config(cfg, () if cfg.ckpt else overrides)  # with ckpt=, build checks them over the run's groups
    if action not in ACTIONS:
        raise InputError(f"retrieve.py: action={cfg.action!r}; use action=build (with gallery=, data= or videos=), "
                         "action=update (the same, for a gallery built before), action=query / "
                         "query=<text or video file>, action=serve (with gallery=), or action=evaluate (moment "
                         "retrieval on a moment gallery)")
    if cfg.get("modelscope") and action in ("build", "update", "evaluate"):
        raise InputError("retrieve.py modelscope=<folder> queries the folder's own gallery: give query=<text or video> "
                         "or action=serve")
    if not cfg.gallery and not cfg.get("modelscope"):
        raise InputError("retrieve.py needs gallery=<file>: where to write (build) or read (query) the gallery")
    if launched_by_torchrun() and int(os.environ["WORLD_SIZE"]) > 1 and action != "build":
        raise InputError(f"retrieve.py action={action} runs in one process; only action=build splits its videos "
                         "over torchrun's processes: run it with python, not torchrun")
    return ACTIONS[action](cfg, overrides)
