"""Small helpers every layer shares, with no project imports of their own: command-line errors and logging
(:mod:`~podtarget.common.cli`), the ``gs://`` credential check (:mod:`~podtarget.common.cloud`), day lists and
ranges (:mod:`~podtarget.common.days`), stable integer hashing (:mod:`~podtarget.common.hashing`) and the
configurations' parameter checks, one message format for all (:mod:`~podtarget.common.checks`).
"""

# The folders are the package podtarget (pyproject's package-dir): imported as `common` from the repository root,
# this folder would be a second copy of it, with its own module state, beside the installed one.
if __name__ != "podtarget.common":
    raise ImportError(
        f"{__name__!r} is the folder common/ of podtarget: import podtarget.common (make setup installs it)"
    )
