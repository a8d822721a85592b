"""Moved to ``edgeq.numerics.gemmlowp``; this alias goes once every importer is updated."""

from edgeq.numerics.gemmlowp import *  # noqa: F401,F403
