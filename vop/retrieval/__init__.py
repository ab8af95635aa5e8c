"""Retrieval: a gallery of embeddings on disk, an index over it, a text or a video as the query."""
