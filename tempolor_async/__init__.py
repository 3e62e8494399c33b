"""tempolor_async: an asyncio-first SDK for the TemPolor music-generation API (useapi.net).

>>> async with TempolorClient() as client:  # token from USEAPI_TOKEN
...     submission = await client.music.create_song("uplifting synth-pop about the sea")
...     job = await client.await_job(submission.jobs[0])
...     path = await client.music.download(job.job_id, ".")

Layout. What every service shares (one session handling, one retry loop, one converter)::

    _base_client.py   BaseClient: the options every client checks, its HttpSession, closing
    _http.py          HttpSession: the one seam to aiohttp, the retry loop, media streams
    _protocol.py      pure: ApiRequest, retry decisions, JSON decoding, and ``Service``,
                      the hooks through which a service states what is its own
    _errors.py        the exception tree every service raises from
    _convert.py       the one cattrs converter (camelCase or snake_case keys, .raw kept)
    _pagination.py    AsyncPager and Page: cursor pages, and numbered_pages for page numbers
    _files.py         uploads streamed from disk, downloads written atomically
    _validation.py    the input checks and their limits

What is TemPolor's::

    _client.py        TempolorClient: configuration, resources, waiting for jobs
    _models.py        TemPolor's models and enums
    _polling.py       await_job and the shared poll loop of as_completed
    resources/        one module per part of the API; resources/_service.py holds
                      TemPolor's Service (bearer token, ``{"error"}`` bodies, cursor pages)
    cli/              the ``tempolor`` command
    testing/          the simulators: _server.py (what they share), tempolor/ (FakeTempolor)

What is Noiz's (``tempolor_async.noiz``)::

    noiz/_client.py   NoizClient
    noiz/_service.py  Noiz's Service: the bare key, the {code, message, data} envelope
    noiz/_models.py   Voice, VoiceClone, DeletedVoice, Speech, VoiceDesign, Transcript, ...
    noiz/voices.py    list (page numbers), get, clone (multipart), design, delete
    noiz/speech.py    synthesize (audio streamed to disk), stream (chunks as sent), transcribe
    noiz/text.py      enhance_emotions
    testing/noiz/     FakeNoiz
"""

import importlib
from typing import TYPE_CHECKING, Any

from ._callbacks import CallbackReceiver
from ._client import TempolorClient
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    CoordinationError,
    JobFailedError,
    JobTimeoutError,
    NotFoundError,
    PaginationError,
    PaymentRequiredError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
    TempolorError,
    ValidationError,
)
from ._fleet import RedisCoordination
from ._models import (
    Account,
    AccountCapacity,
    ArtistVoice,
    Capacity,
    ClonedVoice,
    DownloadLink,
    FileFormat,
    InstrumentalModel,
    JobStatus,
    LtmMaterialExtend,
    MidiFile,
    MidiUpload,
    MusicJob,
    MusicMaterial,
    MusicType,
    RunningJob,
    SongModel,
    StemsSplit,
    Submission,
    Tonality,
    VoiceClone,
)
from ._pagination import AsyncPager, Page

if TYPE_CHECKING:
    from .batch import BatchEvent, BatchItemResult, BatchReport, InstrumentalRequest, SongRequest

# Names loaded on first use (PEP 562), so that ``import tempolor_async`` does not load what
# only some programs need: batches bring sqlite3 and the journal.
_LAZY = {
    "BatchEvent": ".batch",
    "BatchItemResult": ".batch",
    "BatchReport": ".batch",
    "InstrumentalRequest": ".batch",
    "SongRequest": ".batch",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "Account",
    "AccountCapacity",
    "ArtistVoice",
    "AsyncPager",
    "AuthenticationError",
    "BadRequestError",
    "BatchEvent",
    "BatchItemResult",
    "BatchReport",
    "CallbackReceiver",
    "Capacity",
    "ClonedVoice",
    "ConfigurationError",
    "CoordinationError",
    "DownloadLink",
    "FileFormat",
    "InstrumentalModel",
    "InstrumentalRequest",
    "JobFailedError",
    "JobStatus",
    "JobTimeoutError",
    "LtmMaterialExtend",
    "MidiFile",
    "MidiUpload",
    "MusicJob",
    "MusicMaterial",
    "MusicType",
    "NotFoundError",
    "Page",
    "PaginationError",
    "PaymentRequiredError",
    "RateLimitError",
    "RedisCoordination",
    "ResponseDecodeError",
    "RunningJob",
    "ServerError",
    "SongModel",
    "SongRequest",
    "StemsSplit",
    "Submission",
    "TempolorClient",
    "TempolorError",
    "Tonality",
    "ValidationError",
    "VoiceClone",
    "__version__",
]
