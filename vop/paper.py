"""Published figures, said once: the VoP paper's (CVPR 2023, figure 1: MSR-VTT-9k, CLIP ViT-B/32), and
the trainable-parameter claims of methods added since (their own papers)."""

# Text->video R@1 gain over full fine-tuning, in points.
PAPER_GAIN = {"full": 0.0, "bias": -2.0, "proj": -4.6, "partial": -1.9, "adapter_attn": -4.1,
              "adapter_ffn": -3.5, "vop": -2.1, "vop_f": 0.9, "vop_fp": 1.8, "vop_fc": 2.9}
# Trainable share of the model, in percent.
PAPER_TRAINABLE_PERCENT = {"full": 100.0, "bias": 0.10, "proj": 0.54, "partial": 6.41, "adapter_attn": 1.65,
                           "adapter_ffn": 1.65, "vop": 0.10, "vop_f": 0.10, "vop_fp": 0.38, "vop_fc": 11.78}
# Methods from other papers: (trainable values, trainable %) as their authors state them.
# DGL (AAAI 2024; github.com/knightyxp/DGL README): "0.83 MB" trained parameters, read as 0.83M values (the
# README ties it to the linear latent space: "For DGL-Linear, you can only training with 0.83 MB
# parameters"), and "0.67% parameters" (abstract). Its MSR-VTT-9k B/32 checkpoint (45.8 t2v R@1) is
# the transformer latent space (method=dgl's default).
OTHER_PAPER_TRAINABLE = {"dgl": (830_000, 0.67)}
# The paper's row order; methods not listed follow alphabetically.
METHOD_ORDER = ("zeroshot", "full", "bias", "proj", "partial", "adapter_attn", "adapter_ffn",
                "vop", "vop_p", "vop_c", "vop_f", "vop_fp", "vop_fc", "dgl", "lora", "xpool")
