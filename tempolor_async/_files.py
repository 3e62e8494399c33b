"""Files in and out: upload bodies streamed from disk, downloads written atomically.

An upload is the raw file with its Content-Type (TemPolor), or a part of a multipart form
(Noiz); either way a path is streamed from disk, never read whole. A download is
written beside its destination under a temporary name and renamed into place only once it is
complete, so a failure or a cancellation never leaves a partial file.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import io
import mimetypes
import os
import re
import tempfile
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import IO, Any, Union

import aiohttp
import anyio

from . import _protocol, _validation
from ._errors import ValidationError
from ._http import HttpSession, logger

CHUNK_BYTES = 256 * 1024

UploadSource = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", IO[bytes]]
ProgressCallback = Callable[[int, int | None], Awaitable[None] | None]

_UNSAFE_NAME = re.compile(r"[^\w.\-]+")
# File names are limited to 255 bytes almost everywhere; the temporary name adds about 20.
MAX_NAME_BYTES = 200
MAX_EXTENSION_BYTES = 16


class Upload:
    """A raw request body from bytes, a path (streamed from disk) or a binary file object."""

    def __init__(
        self,
        source: UploadSource,
        content_type: str,
        size: int | None,
        filename: str | None = None,
    ) -> None:
        self._source = source
        self.content_type = content_type
        self.size = size
        self.filename = filename
        self._start = _position(source)
        self._opened: IO[bytes] | None = None

    @classmethod
    def prepare(
        cls,
        parameter: str,
        source: UploadSource,
        given_type: str | None,
        *,
        by_extension: Mapping[str, str],
        allowed: frozenset[str],
        default: str | None = None,
    ) -> Upload:
        """Check the source and settle its Content-Type before anything is sent."""
        if isinstance(source, (bytes, bytearray, memoryview)):
            size: int | None = len(source)
            filename = None
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.is_file():
                raise ValidationError(parameter, f"no such file: {os.fspath(path)!r}")
            size = path.stat().st_size
            filename = path.name
        elif hasattr(source, "read"):
            size = _remaining_size(source)
            name = getattr(source, "name", None)
            filename = name if isinstance(name, str) else None
        else:
            raise ValidationError(
                parameter, f"must be bytes, a path or a binary file object, not {type(source)}"
            )
        if size == 0:
            raise ValidationError(parameter, "is empty: the service refuses empty files")
        kind = _validation.content_type(
            parameter,
            given_type,
            filename,
            by_extension=by_extension,
            allowed=allowed,
            default=default,
        )
        return cls(source, kind, size, filename)

    @classmethod
    def audio(cls, source: UploadSource, content_type: str | None) -> Upload:
        """An audio upload: Content-Type given, or from the documented extension table."""
        return cls.prepare(
            "audio",
            source,
            content_type,
            by_extension=_validation.AUDIO_TYPE_BY_EXTENSION,
            allowed=_validation.AUDIO_TYPES,
        )

    @classmethod
    def midi(cls, source: UploadSource, content_type: str | None) -> Upload:
        """A MIDI upload: ``audio/midi`` unless given or told otherwise by the extension."""
        return cls.prepare(
            "midi",
            source,
            content_type,
            by_extension=_validation.MIDI_TYPE_BY_EXTENSION,
            allowed=_validation.MIDI_TYPES,
            default="audio/midi",
        )

    def body(self) -> tuple[Any, dict[str, str]]:
        """What to hand aiohttp for one attempt: the data and its headers. A path is opened
        here and closed by :meth:`release`; a caller's file object is never closed."""
        headers = {"Content-Type": self.content_type}
        if isinstance(self._source, (bytes, bytearray, memoryview)):
            return bytes(self._source), headers
        if self.size is not None:
            headers["Content-Length"] = str(self.size)
        return _chunks(self._stream()), headers

    def form_value(self) -> Any:
        """The value of a multipart part for one attempt: bytes, the opened file (aiohttp
        reads it in a worker thread and knows its size), or a caller's file object in
        chunks (aiohttp would close the file object itself)."""
        if isinstance(self._source, (bytes, bytearray, memoryview)):
            return bytes(self._source)
        stream = self._stream()
        return stream if stream is self._opened else _chunks(stream)

    def _stream(self) -> IO[bytes]:
        source = self._source
        if isinstance(source, (bytes, bytearray, memoryview)):
            return io.BytesIO(source)
        if isinstance(source, (str, os.PathLike)):
            self.release()
            self._opened = open(source, "rb")  # noqa: SIM115 - release() closes it
            return self._opened
        if self._start is not None:
            source.seek(self._start)
        return source

    def release(self) -> None:
        """Close the file opened for the last attempt (synchronously: safe when cancelled)."""
        if self._opened is not None:
            self._opened.close()
            self._opened = None

    @property
    def rewindable(self) -> bool:
        """Whether the body can be sent again (a file object must be seekable)."""
        return not hasattr(self._source, "read") or self._start is not None


class FormUpload:
    """A multipart/form-data body: text fields and at most one file, streamed from its
    source as :class:`Upload` streams a raw body. Same interface as Upload for the seam."""

    def __init__(
        self,
        fields: Mapping[str, str],
        file: Upload | None = None,
        *,
        file_field: str = "file",
        accept: str | None = None,
    ) -> None:
        self.fields = dict(fields)
        self.file = file
        self.file_field = file_field
        self.headers = {"Accept": accept} if accept else {}

    def body(self) -> tuple[Any, dict[str, str]]:
        form = aiohttp.FormData(default_to_multipart=True)
        for name, value in self.fields.items():
            form.add_field(name, value)
        if self.file is not None:
            extension = mimetypes.guess_extension(self.file.content_type) or ""
            filename = safe_name(self.file.filename or "", fallback="audio")
            if "." not in filename:
                filename += extension
            form.add_field(
                self.file_field,
                self.file.form_value(),
                filename=filename,
                content_type=self.file.content_type,
            )
        return form, self.headers

    def release(self) -> None:
        if self.file is not None:
            self.file.release()

    @property
    def rewindable(self) -> bool:
        return self.file is None or self.file.rewindable


def _position(source: Any) -> int | None:
    if hasattr(source, "read") and hasattr(source, "seek"):
        try:
            if source.seekable():
                return int(source.tell())
        except (OSError, ValueError, AttributeError):
            return None
    return None


def _remaining_size(stream: Any) -> int | None:
    """Bytes left in a file object, where that can be known."""
    try:
        return int(os.fstat(stream.fileno()).st_size - stream.tell())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass
    start = _position(stream)
    if start is None:
        return None
    end = stream.seek(0, io.SEEK_END)
    stream.seek(start)
    return int(end - start)


async def _chunks(stream: IO[bytes]) -> AsyncIterator[bytes]:
    """The file in chunks, read in a worker thread so that the event loop never blocks."""
    while chunk := await anyio.to_thread.run_sync(stream.read, CHUNK_BYTES):
        yield chunk


# ----------------------------------------------------------------- downloads


def safe_name(name: str, fallback: str = "download") -> str:
    """A base name that cannot leave its folder: no separators, no dot-dot, nothing hidden,
    and short enough in bytes (with room for the temporary name) for any file system; a
    shortened name keeps its extension."""
    name = unicodedata.normalize("NFC", name.replace("\\", "/")).rpartition("/")[2]
    name = _UNSAFE_NAME.sub("_", name).strip("._")
    stem, dot, extension = name.rpartition(".")
    if not dot or len(extension.encode()) > MAX_EXTENSION_BYTES:
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    budget = MAX_NAME_BYTES - len(suffix.encode())
    stem = stem.encode()[:budget].decode("utf-8", "ignore").rstrip("._")
    return stem + suffix if stem else fallback + suffix


def names_directory(dest: str | os.PathLike[str]) -> bool:
    """Whether ``dest`` means a folder: an existing one, or a path ending with a separator."""
    text = os.fspath(dest)
    if isinstance(text, str) and text.endswith(tuple(filter(None, (os.sep, os.altsep)))):
        return True
    return Path(text).is_dir()


def check_destination(dest: str | os.PathLike[str], name: str = "download") -> Path:
    """Make sure, before any request, that ``dest`` can hold the file ``name``, and return
    the path it will be written to. A folder named with a trailing separator is created
    (with its parents) if missing; a file where a folder is needed is refused."""
    if isinstance(dest, bytes) or not isinstance(dest, (str, os.PathLike)):
        raise ValidationError("dest", f"must be a str or os.PathLike path, not {type(dest)}")
    path = Path(dest)
    if names_directory(dest):
        if path.exists() and not path.is_dir():
            raise ValidationError("dest", f"{os.fspath(path)!r} is a file, not a folder")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ValidationError(
                "dest", f"cannot create folder {os.fspath(path)!r}: {reason}"
            ) from None
        folder, target = path, path / safe_name(name)
    else:
        folder, target = path.parent, path
        if not folder.is_dir():
            raise ValidationError(
                "dest",
                f"folder {os.fspath(folder)!r} does not exist "
                "(end dest with a path separator to have it created)",
            )
    if target.is_dir():
        raise ValidationError("dest", f"{os.fspath(target)!r} is a folder, not a file")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValidationError("dest", f"cannot write in folder {os.fspath(folder)!r}")
    return target


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class AtomicFile:
    """A temporary file beside ``target``, renamed onto it by :meth:`commit`.

    Cleanup is synchronous on purpose: after a cancellation any await would be cancelled too.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".part", dir=target.parent
        )
        self._temporary = temporary
        self._file = os.fdopen(descriptor, "wb")
        self.written = 0

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self.written += len(chunk)

    def commit(self) -> Path:
        """Give the file the permissions a plain ``open`` would, then move it into place."""
        self._file.close()
        os.chmod(self._temporary, 0o666 & ~_umask())
        os.replace(self._temporary, self.target)
        return self.target

    def discard(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._temporary)


async def report(callback: ProgressCallback | None, done: int, total: int | None) -> None:
    """Call a sync or async progress callback."""
    if callback is None:
        return
    result = callback(done, total)
    if inspect.isawaitable(result):
        await result


async def download(
    http: HttpSession,
    url: str,
    dest: str | os.PathLike[str],
    name: str,
    on_progress: ProgressCallback | None,
) -> Path:
    """Stream ``url`` into ``dest`` (or ``dest/name``), atomically, retrying transient
    failures from the start. Returns the path written."""
    target = check_destination(dest, name)
    retries = 0
    while True:
        partial = AtomicFile(target)
        try:
            async with http.stream(url) as response:
                total = response.content_length
                async for chunk in response.content.iter_any():
                    partial.write(chunk)
                    await report(on_progress, partial.written, total)
                    # Buffered chunks arrive without suspending: honour a cancellation anyway.
                    await anyio.lowlevel.checkpoint_if_cancelled()
            return partial.commit()
        except BaseException as exc:
            partial.discard()
            if not (_protocol.transient(exc) and retries < http.max_retries):
                raise
        retries += 1
        delay = _protocol.retry_delay(retries)
        logger.warning("download of %s failed; retrying in %.1f s", target.name, delay)
        await anyio.sleep(delay)
