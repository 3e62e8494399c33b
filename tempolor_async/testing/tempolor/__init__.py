"""The TemPolor simulator, split by resource as the SDK is: ``base`` (state and shared
checks), ``accounts``, ``music``, ``scheduler``, ``voices``, ``midi``, ``media`` (the /cdn
files), ``callbacks`` (replyUrl), ``state`` (the world as data) and ``server`` (the whole)."""

from .server import FakeTempolor

__all__ = ["FakeTempolor"]
