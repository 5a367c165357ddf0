"""The processes a server offers: built-in demo processes, so a fresh install has
something to run, and the registry a server builds from its config."""

from .builtin import BUILTINS
from .loading import build_registry

__all__ = ["BUILTINS", "build_registry"]
