"""The Beam steps the pipelines wire: DoFns and composite ``PTransform``s that read raw logs, build feature
snapshots and examples, score with ``RunInference``, simulate logs and write the small shared outputs (counts, dead
letters, JSON). Each calls the Arrow logic (:mod:`podtarget.transforms.arrow`) on the machinery of
:mod:`podtarget.transforms.runtime`.
"""
