"""Distillation methods: teacher → static student.

- `base`: the method interface (`distill(...) -> Distilled`) and its contract;
- `registry`: the methods by name, and each one's parameter class;
- `vocabulary`: model2vec's `distill`, each token embedded alone (`VocabularyParams`);
- `corpus`: static vectors, token weights and a map trained on the teacher's real sentence
  embeddings of the corpus (`CorpusParams`);
- `featurize`: those teacher targets, on disk and resumable; `training`: the training loop;
- `corpus_words`: the corpus words both methods add to the tokenizer.
"""
