"""The one base class of the project's user errors: a bad params file, a broken data set, an unreadable file, a
command-line argument that cannot work. Every error class of the package derives from :class:`PipelineError`, so the
command line (:mod:`pipeline.cli`) tells a user's mistake from a bug by one ``isinstance`` check.

No imports beyond the standard library: reporting an error must never import torch.
"""

from __future__ import annotations

__all__ = ["PipelineError"]


class PipelineError(ValueError):
    """A user's mistake the message names (``<path or key>: <problem>``); printed as one line, without a traceback.

    A ``ValueError``, so callers that catch ``ValueError`` keep working.
    """
