"""tempolor_async: an asyncio-first SDK for the TemPolor music-generation API (useapi.net).

>>> async with TempolorClient() as client:  # token from USEAPI_TOKEN
...     submission = await client.music.create_song("uplifting synth-pop about the sea")
...     job = await client.await_job(submission.jobs[0])
...     path = await client.music.download(job.job_id, ".")
"""

from ._callbacks import CallbackReceiver
from ._client import TempolorClient
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
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
    Page,
    RunningJob,
    SongModel,
    StemsSplit,
    Submission,
    Tonality,
    VoiceClone,
)
from ._pagination import AsyncPager

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
    "CallbackReceiver",
    "Capacity",
    "ClonedVoice",
    "ConfigurationError",
    "DownloadLink",
    "FileFormat",
    "InstrumentalModel",
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
    "ResponseDecodeError",
    "RunningJob",
    "ServerError",
    "SongModel",
    "StemsSplit",
    "Submission",
    "TempolorClient",
    "TempolorError",
    "Tonality",
    "ValidationError",
    "VoiceClone",
    "__version__",
]
