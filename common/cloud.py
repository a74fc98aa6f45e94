"""Credentials for ``gs://`` paths, checked before any work.

Without credentials, Beam's GCS client retried for about two minutes and then failed with an unrelated error,
and training waited silently for 400 s. :func:`require_credentials` looks for Google's Application Default
Credentials once (``GOOGLE_APPLICATION_CREDENTIALS``, ``gcloud auth application-default login``, or the metadata
server of a GCE / Dataflow machine: a few seconds at most) and fails with what to do. Against a local emulator
(``STORAGE_EMULATOR_HOST``) no credentials are needed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

_checked: dict[str, str | None] = {}


class CredentialsError(RuntimeError):
    """A ``gs://`` path, and no Google Cloud credentials to reach it."""


def require_credentials(paths: Iterable[str | None]) -> None:
    """Raise :class:`CredentialsError` when any of ``paths`` is on ``gs://`` and no credentials can be found."""
    cloud = sorted({p for p in paths if p and p.startswith("gs://")})
    if not cloud or os.environ.get("STORAGE_EMULATOR_HOST"):
        return
    if "gs" not in _checked:
        _checked["gs"] = _find_credentials()
    if _checked["gs"] is not None:
        raise CredentialsError(
            f"{cloud[0]} is on Google Cloud Storage, but no credentials were found ({_checked['gs']}): set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or run `gcloud auth application-default "
            "login`; on GCE and Dataflow workers the machine's service account is used"
        )


def _find_credentials() -> str | None:
    """None when Application Default Credentials exist; else why not."""
    try:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError
    except ImportError:
        return "google-auth is not installed"
    os.environ.setdefault("GCE_METADATA_TIMEOUT", "2")  # the metadata server answers at once where there is one
    # google-auth warns of each place it found nothing (and of each try of the metadata server); the command's one
    # error line says what to do instead.
    search_log = logging.getLogger("google.auth")
    level, search_log.level = search_log.level, logging.ERROR
    try:
        google.auth.default()
    except DefaultCredentialsError as exc:
        return str(exc).split(". ")[0]
    finally:
        search_log.setLevel(level)
    return None
