"""The artifact: a finished model's folder, and everything written into it.

- `record`: `ModelRecord`, the typed record of how a model was made (`distillery.json`);
- `folder`: `ModelFolder`, the one owner of the folder: created atomically, opened by id, listed,
  sized, its search collection and evaluation report read and written. No other module knows a
  file name inside a model folder;
- `card`: the model card (`README.md`), rendered from the record.

A folder is a complete model2vec folder (it loads in `StaticModel` and `SentenceTransformer`) with
Distillery's files beside model2vec's own.
"""
