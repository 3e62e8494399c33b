"""The package's import surface: what ``import tempolor_async`` loads, and lazy names."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import tempolor_async


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(done.stdout))


def test_import_loads_no_server_and_no_journal() -> None:
    loaded = loaded_after("import tempolor_async")
    assert "tempolor_async._client" in loaded
    for heavy in ("aiohttp.web", "sqlite3", "tempolor_async.batch", "tempolor_async.noiz"):
        assert heavy not in loaded, heavy


def test_batch_names_load_on_first_use() -> None:
    loaded = loaded_after("from tempolor_async import SongRequest, BatchReport")
    assert "tempolor_async.batch" in loaded
    assert "sqlite3" in loaded


def test_lazy_names_are_the_batch_package_objects() -> None:
    from tempolor_async import batch

    for name in ("BatchEvent", "BatchItemResult", "BatchReport", "InstrumentalRequest"):
        assert getattr(tempolor_async, name) is getattr(batch, name)
        assert name in dir(tempolor_async)
        assert name in tempolor_async.__all__


def test_every_public_name_resolves() -> None:
    for name in tempolor_async.__all__:
        assert getattr(tempolor_async, name) is not None


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nonexistent'"):
        tempolor_async.Nonexistent  # noqa: B018


@pytest.mark.anyio
async def test_callback_receiver_serves_with_aiohttp_web_loaded_on_use() -> None:
    import aiohttp

    receiver = tempolor_async.CallbackReceiver()
    async with (
        receiver.serve() as url,
        aiohttp.ClientSession() as session,
        session.post(f"{url}/not-the-secret", data=b"{}") as response,
    ):
        assert response.status == 404
