"""Evaluation: encode every video once and every caption once, then rank both ways."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from vop.data.gpu_transforms import VideoTransform
from vop.data.split import Split
from vop.data.tokenizer import tokenize
from vop.engine.precision import autocast
from vop.metrics.retrieval import RetrievalMetrics
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
        was_training = model.training
        model.eval()
        metric = RetrievalMetrics(chunk_size=self.chunk_size).to(self.device)
        self.encode_videos(model, metric)
        self.encode_texts(model, metric)
        model.train(was_training)
        results = metric.compute()  # gathers every rank's embeddings under DDP
        self.chunk_size = metric.chunk_size  # keep a chunk size halved after running out of memory
        return results

    def encode_videos(self, model: CLIPVideoModel, metric: RetrievalMetrics) -> None:
        for batch in tqdm(self.loader, desc=f"eval {self.split.name} videos", disable=not self.progress,
                          unit="batch", leave=False):
            frames = self.transform(batch["video"].to(self.device, non_blocking=True), self.dtype)
            with autocast(self.device, self.dtype):
                emb = model.encode_video(frames)  # [B, D]
            metric.update(video_emb=emb.float(), video_index=batch["index"].to(self.device))

    def encode_texts(self, model: CLIPVideoModel, metric: RetrievalMetrics) -> None:
        """This rank's captions (every world_size-th), with their ids so the metric can align them."""
        mine = torch.arange(self.rank, self.split.num_captions, self.world_size)  # [M / W]
        owners = torch.tensor(self.split.caption_video)
        for start in range(0, mine.numel(), self.text_batch):
            index = mine[start:start + self.text_batch]  # [b]
            ids = tokenize(self.tokenizer, [self.split.captions[i] for i in index.tolist()], self.max_text_len)
            with autocast(self.device, self.dtype):
                emb = model.encode_text(ids.to(self.device))  # [b, D]
            metric.update(text_emb=emb.float(), text_video=owners[index].to(self.device),
                          text_index=index.to(self.device))
