"""Small helpers every layer shares, with no project imports of their own: command-line errors and logging
(:mod:`~podtarget.common.cli`), the ``gs://`` credential check (:mod:`~podtarget.common.cloud`), day lists and
ranges (:mod:`~podtarget.common.days`) and stable integer hashing (:mod:`~podtarget.common.hashing`).
"""
