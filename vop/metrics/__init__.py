"""Retrieval metrics (pure functions and a torchmetrics Metric)."""

from vop.metrics.retrieval import RetrievalMetrics, summarize, t2v_ranks, v2t_ranks

__all__ = ["RetrievalMetrics", "summarize", "t2v_ranks", "v2t_ranks"]
