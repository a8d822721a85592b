"""Moved to ``edgeq.ops.cost``; this alias goes once every importer is updated."""

from edgeq.ops.cost import activation_bytes, node_macs, node_param_bytes, node_params  # noqa: F401
