"""Storage and execution machinery the Beam steps run on: atomic partitions and part files on local or ``gs://``
paths, spill files for the bucketed shuffle, worker processes and the decoded-Avro cache. No Beam composites: those
(the sinks among them) are in :mod:`podtarget.transforms.beam`.

It knows nothing of labels or features: it moves, caches and commits what the Arrow logic computes.
"""
