"""Evaluation: encode every video once and every caption once, then rank both ways."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from vop.data.bad_videos import UnreadableEvaluationVideo, every_video_readable
from vop.data.decode_error import VideoDecodeError
from vop.data.gpu_transforms import VideoTransform
from vop.data.split import Split
from vop.engine import distributed
from vop.engine.embed import encode_captions, encode_video_batches
from vop.engine.finite_embeddings import require_finite_on_every_rank
from vop.metrics.retrieval import RetrievalMetrics, ranks_from_scores, summarize
from vop.models.clip import CLIPVideoModel


class Evaluator:
    """R@1/5/10, MdR and MnR for text->video and video->text on one split."""

    def __init__(self, split: Split, loader: DataLoader, tokenizer, max_text_len: int, device: torch.device,
                 dtype: torch.dtype, image_size: int, chunk_size: int = 1024, text_batch: int = 256,
                 progress: bool = True, rank: int = 0, world_size: int = 1):
        self.split, self.loader, self.tokenizer = split, loader, tokenizer
        self.max_text_len, self.device, self.dtype = max_text_len, device, dtype
        self.transform = VideoTransform(size=image_size, train=False)
        self.chunk_size, self.text_batch, self.progress = chunk_size, text_batch, progress
        self.rank, self.world_size = rank, world_size

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
        results = metric.compute()  # gathers every rank's embeddings under DDP
        self.chunk_size = metric.chunk_size  # keep a chunk size halved after running out of memory
        return results

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
        """X-Pool's evaluation: every caption pools every video's frames (the model's `similarity`,
        chunked over captions), and the metrics rank that score matrix. Under torchrun every rank
        gathers all frames and scores every caption (the same matrix on each rank)."""
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
        unique, inverse = torch.unique(index, sorted=True, return_inverse=True)
        first = torch.full_like(unique, index.shape[0]).scatter_reduce(
            0, inverse, torch.arange(index.shape[0], device=index.device), reduce="amin")
        frames = frames[first]  # [N, T, D] in split order, one copy of each video
        text = torch.cat([emb for _, emb in encode_captions(model, self.tokenizer, self.split.captions,
                                                            self.max_text_len, self.device, self.dtype,
                                                            self.text_batch)])  # [M, D]
        self.embeddings = (text, frames)
        require_finite_on_every_rank(frames.flatten(0, 1), text, f"evaluating the {self.split.name} split")
        scores = model.similarity(text, frames).float()  # [M, N]
        model.train(was_training)
        t2v, v2t = ranks_from_scores(scores, torch.tensor(self.split.caption_video))
        return {**{f"t2v_{k}": v for k, v in summarize(t2v).items()},
                **{f"v2t_{k}": v for k, v in summarize(v2t).items()}}
