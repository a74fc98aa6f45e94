"""transforms"""

# The folders are the package podtarget (pyproject's package-dir): imported as `transforms` from the repository root,
# this folder would be a second copy of it, with its own module state, beside the installed one.
if __name__ != "podtarget.transforms":
    raise ImportError(
        f"{__name__!r} is the folder transforms/ of podtarget: import podtarget.transforms (make setup installs it)"
    )
