"""Built-in demo processes, so a fresh install has something to run."""

from .builtin import BUILTINS

__all__ = ["BUILTINS"]
