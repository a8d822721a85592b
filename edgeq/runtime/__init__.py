from edgeq.runtime.reference import run_batch, run_graph

__all__ = ["run_batch", "run_graph"]
