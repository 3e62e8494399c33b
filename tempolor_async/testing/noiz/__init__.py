"""The Noiz simulator: ``state`` (the catalogue and cloned voices) and ``server`` (FakeNoiz)."""

from .server import FakeNoiz

__all__ = ["FakeNoiz"]
