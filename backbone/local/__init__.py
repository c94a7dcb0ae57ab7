"""The local platform: real services as processes on 127.0.0.1, for tests, CI and demos."""
from .environment import LocalEnvironment
from .services import LocalError

__all__ = ["LocalEnvironment", "LocalError"]
