"""Pure Arrow and NumPy logic: validation, attribution, features, example assembly, candidates and ranking.

Nothing here imports Beam or touches storage: every function takes and returns Arrow tables or arrays, so it is
tested on small hand-made tables and reused by whichever runner (or notebook) calls it.
"""
