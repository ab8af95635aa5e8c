"""The query/gallery encoder: a (possibly tuned) model plus everything needed to embed texts and videos.

Its `identity` (model, method, checkpoint and a fingerprint of the weights that make the model
differ from its config) is written into a gallery, so a gallery is only ever queried with the
encoder that built it.
"""
from __future__ import annotations

import hashlib
import json
from collections import deque
from pathlib import Path
from typing import Iterator, Sequence

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from vop.data.decoders.base import VideoDecodeError
from vop.data.gpu_transforms import VideoTransform
from vop.data.split import Split
from vop.engine import assembly
from vop.engine.checkpoint import read_checkpoint, resolve_path, trainable_state
from vop.engine.embed import encode_captions, encode_video_batches
from vop.errors import InputError
from vop.models.released import is_released

# The config groups an encoder depends on (stored in a gallery so it can be rebuilt at query time).
ENCODER_GROUPS = ("model", "method", "data", "decoder", "trainer")


def fingerprint(model_cfg: DictConfig, method: str, model: torch.nn.Module) -> str:
    """sha256 over the model config, the method and the bytes of every trainable tensor."""
    digest = hashlib.sha256(json.dumps(OmegaConf.to_container(model_cfg, resolve=True), sort_keys=True).encode())
    digest.update(method.encode())
    for name, tensor in sorted(trainable_state(model).items()):
        digest.update(name.encode())
        digest.update(tensor.float().numpy().tobytes())
    return digest.hexdigest()[:16]


class Encoder:
    """Embeds captions and video files with one model; `identity` says which model that is."""

    def __init__(self, cfg: DictConfig, ckpt: str | Path | None = None):
        # Resolved now: the groups are stored in galleries, away from the paths they interpolate.
        self.cfg = OmegaConf.create({g: OmegaConf.to_container(cfg[g], resolve=True) for g in ENCODER_GROUPS})
        cfg = self.cfg
        self.device, self.dtype = assembly.device_and_precision(cfg.trainer)
        released = bool(ckpt) and is_released(ckpt)  # a released .pth holds the whole CLIP: no download
        self.ckpt = str(Path(ckpt).resolve() if released else resolve_path(ckpt).resolve()) if ckpt else None
        parts = assembly.build_model_parts(cfg, ckpt)
        self.model, self.tokenizer, self.decoder, self.text_len = parts.model, parts.tokenizer, parts.decoder, \
            parts.text_len
        self.model.to(self.device).eval()
        self.transform = VideoTransform(size=self.model.image_size, train=False)
        self.identity = {"model": cfg.model.name, "method": cfg.method.name, "ckpt": self.ckpt,
                         "fingerprint": fingerprint(cfg.model, cfg.method.name, self.model)}

    @classmethod
    def from_run(cls, run: str | Path) -> "Encoder":
        """The model of a trained run (a run directory or a checkpoint file), as it was trained."""
        _, saved = read_checkpoint(run)
        return cls(saved, ckpt=run)

    def describe(self) -> str:
        ident = self.identity
        return (f"model={ident['model']} method={ident['method']} ckpt={ident['ckpt']} "
                f"(weights fingerprint {ident['fingerprint']})")

    def encode_texts(self, captions: list[str]) -> torch.Tensor:
        """captions -> [M, D] L2-normalised, on the CPU."""
        chunks = [emb.cpu() for _, emb in encode_captions(self.model, self.tokenizer, captions, self.text_len,
                                                           self.device, self.dtype)]
        return torch.cat(chunks)

    def video_loader(self, split: Split, rows: Sequence[int] | None = None, readable_only: bool = False,
                     num_workers: int | None = None) -> DataLoader:
        """A loader over `split`'s videos (all, or `rows`), sampled as at evaluation; `readable_only`:
        a video that fails to decode is listed in its batch's "unreadable" instead of raising."""
        return assembly.eval_loader(self.cfg, split, self.decoder, pin_memory=self.device.type == "cuda", rows=rows,
                                    readable_only=readable_only, num_workers=num_workers, seed=0)

    def encode_videos(self, split: Split, rows: range | None = None, progress: bool = False) -> torch.Tensor:
        """Videos of `split` (all, or `rows`) -> [n, D] L2-normalised, on the CPU, in row order ([n, T, D]
        frames for a text-conditioned pooling)."""
        return self._encode(self.video_loader(split, rows), progress)

    def encode_readable_videos(self, split: Split, rows: range | None = None, progress: bool = False
                               ) -> tuple[torch.Tensor, dict[int, str]]:
        """Like `encode_videos`, but a video that fails to decode is left out instead of raising:
        ([readable videos, D] in row order, {video index: reason} of the others)."""
        return next(self.encode_readable_chunks(split, [range(split.num_videos) if rows is None else rows], progress))

    def encode_readable_chunks(self, split: Split, chunks: Sequence[range], progress: bool = False
                               ) -> Iterator[tuple[torch.Tensor, dict[int, str]]]:
        """`encode_readable_videos` of each of `chunks` (ascending, disjoint ranges of rows), yielded chunk
        by chunk, from one loader over them all: its workers go on decoding the next chunk while the
        caller saves this one. (A loader per chunk would start its workers anew at every chunk and leave
        the model waiting for their first batch.)"""
        if any(a.stop > b.start for a, b in zip(chunks, chunks[1:])) or any(c.step != 1 for c in chunks):
            raise ValueError(f"encode_readable_chunks: chunks must be ascending, disjoint ranges, got {chunks}")
        found_bad: deque[tuple[int, str]] = deque()  # appended by the loading side (on CUDA the feed's thread)

        def readable(loader):
            for batch in loader:
                found_bad.extend((i, r["reason"]) for i, r in batch.pop("unreadable").items())
                if len(batch["index"]):
                    yield batch

        starts = torch.tensor([rows.start for rows in chunks])
        embs: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in chunks]  # per chunk: (emb, index)
        bad: list[dict[int, str]] = [{} for _ in chunks]
        todo = [len(rows) for rows in chunks]  # per chunk: videos neither encoded nor found unreadable yet

        def take(emb: torch.Tensor, index: torch.Tensor) -> None:
            owner = torch.searchsorted(starts, index, right=True) - 1  # [n] the chunk of each video
            for k in owner.unique().tolist():
                embs[k].append((emb[owner == k], index[owner == k]))
                todo[k] -= int((owner == k).sum())
            while found_bad:
                i, reason = found_bad.popleft()
                k = int(torch.searchsorted(starts, torch.tensor(i), right=True)) - 1
                bad[k][i] = reason
                todo[k] -= 1

        loader = self.video_loader(split, [i for rows in chunks for i in rows], readable_only=True)
        done = 0  # chunks yielded
        batches = encode_video_batches(self.model, readable(loader), self.transform, self.device, self.dtype,
                                       progress=progress, total=len(loader), per_frame=self.model.text_conditioned)
        for emb, index in batches:
            take(emb.cpu(), index.cpu())
            while done < len(chunks) and todo[done] == 0:
                yield self._in_order(embs[done]), bad[done]
                embs[done], done = [], done + 1
        take(torch.zeros(0), torch.zeros(0, dtype=torch.long))  # unreadable videos after the last readable one
        for k in range(done, len(chunks)):
            yield self._in_order(embs[k]), bad[k]

    def _in_order(self, pieces: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """(embeddings [b, D] or frames [b, T, D], video index [b]) pieces -> one tensor in row order."""
        if not pieces:
            frames = [self.cfg.data.num_frames] if self.model.text_conditioned else []
            return torch.zeros(0, *frames, self.model.clip.config.projection_dim)
        emb, index = torch.cat([e for e, _ in pieces]), torch.cat([i for _, i in pieces])
        return emb[index.argsort()]

    def _encode(self, batches, progress: bool, total: int | None = None) -> torch.Tensor:
        # A text-conditioned pooling (X-Pool) needs the frames [n, T, D]; every other method pools here.
        return self._in_order([(emb.cpu(), index.cpu()) for emb, index in encode_video_batches(
            self.model, batches, self.transform, self.device, self.dtype, progress=progress,
            total=total if total is not None else len(batches), per_frame=self.model.text_conditioned)])

    def encode_video_file(self, path: str | Path) -> torch.Tensor:
        """One video file -> [1, D]; InputError naming the file when it cannot be decoded."""
        split = Split("query", [Path(path).stem], [Path(path)], [], [])
        try:  # in this process: one file needs no workers, and the decoder's error arrives unwrapped
            return self._encode(self.video_loader(split, num_workers=0), progress=False)
        except VideoDecodeError as err:
            decoder_error = err  # the dataset adds its split and item twice over; the decoder's own reason is the first
            while isinstance(decoder_error.__cause__, VideoDecodeError):
                decoder_error = decoder_error.__cause__
            raise InputError(f"query video {path} cannot be decoded: {decoder_error.reason} (a query ending in a "
                             "video suffix is read as a video file)") from None

    def encode_video_files(self, paths: list[str | Path]) -> torch.Tensor:
        """Video files -> [n, D]."""
        return torch.cat([self.encode_video_file(p) for p in paths])
