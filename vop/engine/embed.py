"""Encoders shared by evaluation and retrieval: batches of videos or captions -> embeddings."""
from __future__ import annotations

from typing import Iterable, Iterator

import torch
from tqdm import tqdm

from vop.data.gpu_transforms import VideoTransform
from vop.data.tokenizer import tokenize
from vop.engine.device_feed import DeviceFeed
from vop.engine.precision import autocast
from vop.models.clip import CLIPVideoModel


@torch.inference_mode()
def encode_video_batches(model: CLIPVideoModel, batches: Iterable[dict], transform: VideoTransform,
                         device: torch.device, dtype: torch.dtype, progress: bool = False,
                         desc: str = "videos", total: int | None = None, per_frame: bool = False
                         ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Collated batches (uint8 "video" [B, T, S, S, 3], "index" [B]) -> (embeddings [B, D] fp32, index [B]);
    `per_frame`: frame embeddings [B, T, D] instead (a text-conditioned pooling needs them).

    DeviceFeed moves each batch to `device` (prefetching on CUDA) and decodes deferred frames there."""
    feed = DeviceFeed(batches, device)
    for batch in tqdm(feed, desc=desc, disable=not progress, unit="batch", leave=False, total=total):
        frames = transform(batch["video"], dtype)  # [B, T, 3, H, W]
        with autocast(device, dtype):
            emb = model.encode_video_frames(frames) if per_frame else model.encode_video(frames)  # [B, (T,) D]
        yield emb.float(), batch["index"]


@torch.inference_mode()
def encode_captions(model: CLIPVideoModel, tokenizer, captions: list[str], max_text_len: int,
                    device: torch.device, dtype: torch.dtype, batch_size: int = 256
                    ) -> Iterator[tuple[int, torch.Tensor]]:
    """Captions -> (start, embeddings [b, D] fp32) for captions[start:start + b], in order."""
    for start in range(0, len(captions), batch_size):
        ids = tokenize(tokenizer, captions[start:start + batch_size], max_text_len)  # [b, L]
        with autocast(device, dtype):
            emb = model.encode_text(ids.to(device))  # [b, D]
        yield start, emb.float()
