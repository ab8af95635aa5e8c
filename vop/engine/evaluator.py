"""Evaluation: encode every video once and every caption once, then rank both ways."""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from vop.data.bad_videos import UnreadableEvaluationVideo, every_video_readable
from vop.data.decode_error import VideoDecodeError
from vop.data.gpu_transforms import VideoTransform
from vop.data.split import Split
from vop.engine import distributed
from vop.engine.embed import encode_captions, encode_video_batches
from vop.engine.finite_embeddings import require_finite_on_every_rank
from vop.errors import ConfigError
from vop.metrics.postprocess import NEEDS_BANK, check_names, postprocessed_metrics
from vop.metrics.retrieval import RetrievalMetrics, Similarity
from vop.metrics.scores import metrics_from_scores
from vop.metrics.similarity_file import save_similarity
from vop.models.clip import CLIPVideoModel


class Evaluator:
    """R@1/5/10, MdR and MnR for text->video and video->text on one split, raw, and for each post-processing
    named in `postprocess` under its own name (`dsl/t2v_R@1`; vop/metrics/postprocess.py). Keeps the last
    similarity matrix (`self.similarity`, and `self.bank`: training captions vs the same videos) for the run
    folder."""

    def __init__(self, split: Split, loader: DataLoader, tokenizer, max_text_len: int, device: torch.device,
                 dtype: torch.dtype, image_size: int, chunk_size: int = 1024, text_batch: int = 256,
                 progress: bool = True, rank: int = 0, world_size: int = 1, postprocess=(),
                 bank_captions: list[str] = ()):
        self.split, self.loader, self.tokenizer = split, loader, tokenizer
        self.max_text_len, self.device, self.dtype = max_text_len, device, dtype
        self.transform = VideoTransform(size=image_size, train=False)
        self.chunk_size, self.text_batch, self.progress = chunk_size, text_batch, progress
        self.rank, self.world_size = rank, world_size
        self.postprocess = check_names(postprocess)
        needs_bank = [n for n in self.postprocess if n in NEEDS_BANK]
        if needs_bank and not bank_captions:
            raise ConfigError(f"trainer.postprocess={self.postprocess}: {needs_bank} need a bank of training captions "
                              "(trainer.bank_captions > 0, and a training split)")
        self.bank_captions = list(bank_captions) if needs_bank else []
        self.similarity: Similarity | None = None
        self.bank: torch.Tensor | None = None

    @torch.inference_mode()
    def __call__(self, model: CLIPVideoModel) -> dict[str, float]:
        if model.text_conditioned:
            return self.text_conditioned(model)
        was_training = model.training
        model.eval()
        metric = RetrievalMetrics(chunk_size=self.chunk_size).to(self.device)
        video_emb = self.encode_videos(model, metric)
        text_emb = self.encode_texts(model, metric)
        # Kept for result pages (eval.py examples=N): caption rows [M, D], video rows [N, D] in split order.
        self.embeddings = (text_emb, video_emb)
        model.train(was_training)
        require_finite_on_every_rank(video_emb, text_emb, f"evaluating the {self.split.name} split")
        results = metric.compute()  # raw: the model's own scores; gathers every rank's embeddings under DDP
        sim = metric.last_similarity  # [M captions, N videos], the matrix compute() ranked
        self.chunk_size = metric.chunk_size  # keep a chunk size halved after running out of memory
        self.similarity, self.bank = sim, self.bank_scores(model, sim.video_emb)
        return {**results, **postprocessed_metrics(sim.scores, sim.text_video, self.postprocess, self.bank)}

    def save_similarity(self, path: Path, data: str) -> Path:
        """The last evaluation's matrix (and bank) as a similarity.safetensors (vop/metrics/similarity_file.py)."""
        if self.similarity is None:
            raise RuntimeError("no evaluation has run: no similarity matrix to save")
        videos = [self.split.video_ids[i] for i in self.similarity.video_ids.tolist()]
        return save_similarity(path, self.similarity, videos, self.split.name, data, self.bank)

    def bank_scores(self, model: CLIPVideoModel, video_emb: torch.Tensor) -> torch.Tensor | None:
        """[B, N] the bank's training captions vs the test videos (None without a bank)."""
        if not self.bank_captions:
            return None
        was_training = model.training
        model.eval()
        embs = [emb for _, emb in encode_captions(model, self.tokenizer, self.bank_captions, self.max_text_len,
                                                  self.device, self.dtype, self.text_batch)]
        model.train(was_training)
        return torch.cat(embs).float() @ video_emb.float().T

    def encode_videos(self, model: CLIPVideoModel, metric: RetrievalMetrics) -> torch.Tensor:
        embs, indices = [], []
        batches = every_video_readable(self.loader, self.split)  # an undecodable video: one error naming it
        try:
            for emb, index in encode_video_batches(model, batches, self.transform, self.device, self.dtype,
                                                   self.progress, desc=f"eval {self.split.name} videos"):
                metric.update(video_emb=emb, video_index=index.to(self.device))  # emb [B, D]
                embs.append(emb)
                indices.append(index)
        except VideoDecodeError as err:  # deferred frames decoded on the device (decoder=frames, nvdec)
            raise UnreadableEvaluationVideo(self.split.name, [(err.path, err.reason)]) from err
        return torch.cat(embs)[torch.cat(indices).argsort().to(self.device)]  # [N, D]

    def encode_texts(self, model: CLIPVideoModel, metric: RetrievalMetrics) -> torch.Tensor:
        """This rank's captions (every world_size-th), with their ids so the metric can align them."""
        mine = torch.arange(self.rank, self.split.num_captions, self.world_size)  # [M / W]
        owners = torch.tensor(self.split.caption_video)
        captions = [self.split.captions[i] for i in mine.tolist()]
        embs = []
        for start, emb in encode_captions(model, self.tokenizer, captions, self.max_text_len, self.device,
                                          self.dtype, self.text_batch):
            index = mine[start:start + emb.shape[0]]  # [b]
            metric.update(text_emb=emb, text_video=owners[index].to(self.device), text_index=index.to(self.device))
            embs.append(emb)
        return torch.cat(embs)  # [M / W, D]

    def text_conditioned(self, model: CLIPVideoModel) -> dict[str, float]:
        """X-Pool's evaluation: every caption pools every video's frames (the model's `similarity`, chunked
        over captions), and the metrics rank that score matrix (kept, and post-processed, as the raw one
        is). Under torchrun every rank gathers all frames and scores every caption (the same matrix)."""
        was_training = model.training
        model.eval()
        frames, indices = [], []
        batches = every_video_readable(self.loader, self.split)  # an undecodable video: one error naming it
        try:
            for emb, index in encode_video_batches(model, batches, self.transform, self.device, self.dtype,
                                                   self.progress, desc=f"eval {self.split.name} videos",
                                                   per_frame=True):
                frames.append(emb)  # [B, T, D]
                indices.append(index.to(self.device))
        except VideoDecodeError as err:  # deferred frames decoded on the device (decoder=frames, nvdec)
            raise UnreadableEvaluationVideo(self.split.name, [(err.path, err.reason)]) from err
        frames, index = torch.cat(frames), torch.cat(indices)
        if self.world_size > 1:  # each rank encoded its share (padded with repeats): all of them, once each
            frames, index = distributed.gather_with_grad(frames), distributed.gather_with_grad(index)
        video_ids, inverse = torch.unique(index, sorted=True, return_inverse=True)
        first = torch.full_like(video_ids, index.shape[0]).scatter_reduce(
            0, inverse, torch.arange(index.shape[0], device=index.device), reduce="amin")
        frames = frames[first]  # [N, T, D] in split order, one copy of each video
        text = self.encode_all_captions(model, self.split.captions)  # [M, D]
        self.embeddings = (text, frames)
        require_finite_on_every_rank(frames.flatten(0, 1), text, f"evaluating the {self.split.name} split")
        scores = model.similarity(text, frames).float()  # [M, N]
        bank = model.similarity(self.encode_all_captions(model, self.bank_captions), frames).float() \
            if self.bank_captions else None  # [B, N]
        model.train(was_training)
        text_video = torch.tensor(self.split.caption_video, device=scores.device)
        self.similarity = Similarity(scores, text_video, torch.arange(len(text_video), device=scores.device), video_ids)
        self.bank = bank
        return {**metrics_from_scores(text_video, scores, scores.T),
                **postprocessed_metrics(scores, text_video, self.postprocess, bank)}

    def encode_all_captions(self, model: CLIPVideoModel, captions: list[str]) -> torch.Tensor:
        """Every caption of `captions` on this rank -> [M, D]."""
        return torch.cat([emb for _, emb in encode_captions(model, self.tokenizer, captions, self.max_text_len,
                                                            self.device, self.dtype, self.text_batch)])
