"""Graph passes. Each pass is ``graph -> bool`` (changed or not), or a frozen dataclass with
``__call__`` when it has settings. Passes never print: they log, and a refusal is logged with
``refuse(...)`` so the pipeline can show the user why something was not folded."""

import logging

log = logging.getLogger("edgeq.passes")


def refuse(pass_name: str, reason: str) -> None:
    """Record why a pass left something as it was (collected by the pipeline into its notes)."""
    log.info("%s: %s", pass_name, reason, extra={"edgeq_refusal": pass_name})
