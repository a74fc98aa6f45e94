"""Storage and execution machinery the Beam steps run on: atomic partitions and part files on local or ``gs://``
paths, spill files for the bucketed shuffle, worker processes, the decoded-Avro cache and the dead-letter sink.

It knows nothing of labels or features: it moves, caches and commits what the Arrow logic computes.
"""
