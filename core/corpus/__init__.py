"""The corpus: what the distillation learns from.

- `plan`: the five domains, shares turned into exact counts, and `CorpusPlan` (what to draw from where);
- `sources`: the sources file, Hub datasets, local files and the built-in docstrings, read through `datasets`;
- `uploads`: user files, checked and copied into the job's own folder before anything reads them;
- `cleaning`: normalisation, passage splitting and length filters;
- `build`: drawing, deduplication, the manifest, the saved corpus, and the Recipe tab's preview.
"""
