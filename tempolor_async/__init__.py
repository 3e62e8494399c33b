"""tempolor_async: an asyncio-first SDK for the TemPolor music-generation API (useapi.net)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
