"""`python -m serve`: the embeddings service (`core.serving.service`) on its own, without the studio."""
