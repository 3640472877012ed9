"""Serving: what a finished model does for a person.

- `collection`: a collection's embeddings, cached by content;
- `index`: `VectorIndex`, the one owner of top-k (exact, or an HNSW graph above 100k rows), and hits;
- `compare`: teacher and student side by side on one collection, and the bounded session cache;
- `timing`: latency and throughput measured the same way for both (the Compare tab, the
  evaluation's speed-up and `bench/speed.py`);
- `speed_chart`: the latency and throughput figure;
- `service`: the embeddings service (Ollama- and OpenAI-shaped HTTP routes; `python -m serve`).
"""
