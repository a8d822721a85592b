"""Moved to ``edgeq.numerics.dyadic``; this alias goes once every importer is updated."""

from edgeq.numerics.dyadic import *  # noqa: F401,F403
from edgeq.numerics.dyadic import _rounding_divide_by_pot, _srdhm  # noqa: F401
