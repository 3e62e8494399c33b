"""Noiz AI's voice API on the SDK's shared core: list, clone, design, get and soft-delete
voices, turn text into speech (to a file, or streamed as it is made), annotate text with
emotions, and transcribe speech.

>>> async with NoizClient() as noiz:  # key from NOIZ_API_KEY
...     clone = await noiz.voices.clone(file="me.wav", display_name="Me")
...     speech = await noiz.speech.synthesize("Hello", "hello.wav", voice_id=clone.voice_id)

Layout: ``_client.py`` (NoizClient), ``_service.py`` (what is Noiz's own: the bare key, the
``{code, message, data}`` envelope), ``_models.py``, ``voices.py``, ``speech.py`` and
``text.py``. The HTTP seam, retries, errors, converter, pager and files are the SDK's shared
ones.
"""

from ._client import NoizClient
from ._models import (
    DeletedVoice,
    OutputFormat,
    Speech,
    Transcript,
    TranscriptSegment,
    Voice,
    VoiceClone,
    VoiceDesign,
    VoiceFeatures,
    VoicePreview,
    VoiceType,
)
from .speech import SpeechStream

__all__ = [
    "DeletedVoice",
    "NoizClient",
    "OutputFormat",
    "Speech",
    "SpeechStream",
    "Transcript",
    "TranscriptSegment",
    "Voice",
    "VoiceClone",
    "VoiceDesign",
    "VoiceFeatures",
    "VoicePreview",
    "VoiceType",
]
