"""Encoders: the teacher and the student behind one interface (`base.Encoder`).

- `base`: the interface every consumer codes against: `encode` (documents) and `encode_queries`
  return unit-length float32 rows, and `fingerprint` is a content hash that keys caches;
- `teacher`: which teacher (resolved, verified, licensed), loading it once per process, and its
  encoder with the query and document prompts it defines;
- `endpoint`, `package`: teachers without weights Distillery can read (an embeddings API, an installed
  package's embedding function), for the corpus method;
- `student`: the static model's fast encoder (model2vec's vectors bit for bit), and the one cached
  load of a student folder.

Methods (teacher targets), evaluation and serving all encode through here.
"""
