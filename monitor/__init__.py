"""driftmon: a streaming drift and data-quality monitor for ML models in production.

Pipeline (one module or package per stage):
source/kafka -> decode -> window (Redis) -> kernels -> evaluate -> alerts/sinks,
with `baseline` providing the reference profiles and `compare` running the same
kernels on a batch file.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("driftmon")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
