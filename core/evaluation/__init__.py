"""Evaluation: teacher and students scored on the same tasks, and the ship verdict.

- `tasks`: the local sets as mteb tasks, in named suites (English, French, both), and the row-limit rule;
- `scoring`: `mteb.evaluate` one task at a time, Hub tasks by name, the teacher-score cache;
- `verdict`: retention and the verdict, pure functions of scores;
- `run`: a saved model end to end: scores, CPU speed-up (`serving.timing`), verdict, report saved
  into the model folder (`artifact`).

The app's Evaluate tab, its evaluation job and `bench/quality.py` all score through `scoring`.
"""
