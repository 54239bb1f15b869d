"""Rollbook: attendance policy as code.

The pipeline, one module per stage:
load -> validate -> parse -> check -> compile -> evaluate -> act.
"""

__version__ = "0.1.0"


def __getattr__(name):
    # `engine.evaluate` and friends without importing the whole pipeline when only the CLI's
    # argument parser is needed.
    if name in ("evaluate", "run_evaluation", "check_policy_file", "RollbookError"):
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
