"""Firebox: shared code of the agent and executor services, and the generated gRPC stubs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("firebox")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
