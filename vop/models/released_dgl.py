"""The DGL authors' checkpoints (github.com/knightyxp/DGL) -> CLIP tensors + DGL hook tensors.

Their `main.py` saves `torch.save({'epoch', 'global_step', 'arch', 'state_dict', 'best_acc1',
'optimizer'[, 'scaler']}, '<dir>/ckpt.pth.tar')` (and copies the best epoch's to `ckpt.best.pth.tar`),
where `state_dict` is the DistributedDataParallel model's: every key `module.` + their CLIP4Clip
model's names. After `module.` is stripped (vop/models/released.py), the keys are:
- `clip.<OpenAI CLIP name>`: the complete frozen CLIP, plus the buffer `clip.visual.position_ids`
  (arange over the patch positions);
- DGL's tensors under `clip.` (their `modules/clip.py`), renamed here onto `DGLHooks`
  (vop/methods/dgl.py), whose modules keep the released structure so that names map one to one.
Only the `state_dict` entry is used; the optimizer's and scaler's states are read (as plain data,
with `weights_only=True`) and ignored.
"""
from __future__ import annotations

import torch

# Their name (after `clip.`) -> ours (on model.hooks). A key ending in "." maps a module's tensors.
DGL_NAMES = {
    "visual.prompt_embeddings": "global_prompts",                  # [1, G, W]
    "unified_prompt_embedding.": "latent.embedding.",              # transformer: [text + local*T, layers*W]
    "PromptTransformer.resblocks.0.": "latent.block.",             # transformer: the one latent block
    "unified_prompt_mlp.": "latent.text_mlp.",                     # transformer: W -> 2W -> W_text
    "visual_prompt_embedding": "latent.embedding",                 # linear: [1, local, layers*W]
    "prefix_text_prompt_proj_layer.": "latent.prefix.",            # linear: W -> W_text
    "postfix_text_prompt_proj_layer.": "latent.suffix.",           # linear: W -> W_text
}
# Names that only DGL's files have: their presence says the file is one.
MARKERS = ("clip.visual.prompt_embeddings", "clip.unified_prompt_embedding.weight", "clip.visual_prompt_embedding")
POSITION_IDS = "clip.visual.position_ids"  # a buffer of their VisualTransformer: arange(patches + 1)


def is_dgl(state: dict[str, torch.Tensor]) -> bool:
    return any(marker in state for marker in MARKERS)


def our_name(name: str) -> str | None:
    """Hook-tensor name of a file key after `clip.`, or None for a CLIP tensor."""
    for theirs, ours in DGL_NAMES.items():
        if theirs.endswith(".") and name.startswith(theirs):
            return ours + name[len(theirs):]
        if name == theirs:
            return ours
    return None


def split_dgl(state: dict[str, torch.Tensor], source: str, error: type[Exception] = ValueError
              ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(the rest of the file, `clip.` names kept, for the CLIP loader; DGL tensors named as on the hooks).

    `clip.visual.position_ids` is checked (it must be 0..N-1) and dropped: CLIP's own positions."""
    rest, hooks = {}, {}
    for name, value in state.items():
        if name == POSITION_IDS:
            if not torch.equal(value.reshape(-1), torch.arange(value.numel(), dtype=value.dtype)):
                raise error(f"{source}: {POSITION_IDS!r} is not 0..{value.numel() - 1}")
            continue
        ours = our_name(name[len("clip."):]) if name.startswith("clip.") else None
        if ours is None:
            rest[name] = value
        else:
            hooks[ours] = value
    if POSITION_IDS not in state:
        raise error(f"{source}: a DGL file holds {POSITION_IDS!r}, this one does not")
    return rest, hooks
