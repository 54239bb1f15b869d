"""Rollbook: attendance policy as code.

The pipeline, one module per stage:
load -> validate -> parse -> check -> compile -> evaluate -> act.
"""

__version__ = "0.1.0"
