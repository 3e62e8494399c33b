"""Noiz AI's voice API on the SDK's shared core: list, clone, get and soft-delete voices, and
turn text into speech with one of them.

>>> async with NoizClient() as noiz:  # key from NOIZ_API_KEY
...     clone = await noiz.voices.clone(file="me.wav", display_name="Me")
...     speech = await noiz.speech.synthesize("Hello", "hello.wav", voice_id=clone.voice_id)

Layout: ``_client.py`` (NoizClient), ``_service.py`` (what is Noiz's own: the bare key, the
``{code, message, data}`` envelope), ``_models.py``, ``voices.py`` and ``speech.py``. The
HTTP seam, retries, errors, converter, pager and files are the SDK's shared ones.
"""

from ._client import NoizClient
from ._models import DeletedVoice, OutputFormat, Speech, Voice, VoiceClone, VoiceType

__all__ = [
    "DeletedVoice",
    "NoizClient",
    "OutputFormat",
    "Speech",
    "Voice",
    "VoiceClone",
    "VoiceType",
]
