"""Small helpers every layer shares, with no project imports of their own: command-line errors and logging
(:mod:`~podtarget.common.cli`), the ``gs://`` credential check (:mod:`~podtarget.common.cloud`), day lists and
ranges (:mod:`~podtarget.common.days`), stable integer hashing (:mod:`~podtarget.common.hashing`) and the
configurations' parameter checks, one message format for all (:mod:`~podtarget.common.checks`).
"""
