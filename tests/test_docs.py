"""SPEC 1 and 2: the reference documentation a newcomer reads with ``help()``, and the
LICENSE the metadata names."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from tempolor_async import TempolorClient
from tempolor_async.resources import Accounts, Midi, Music, Scheduler, Voices
from tempolor_async.resources._base import Resource

ROOT = Path(__file__).resolve().parent.parent
DOCS = "https://useapi.net/docs/api-tempolor-v1/"
# The service's documentation pages, one per endpoint.
PAGES = {
    "post-tempolor-accounts",
    "get-tempolor-accounts",
    "get-tempolor-accounts-user_id",
    "del-tempolor-accounts-user_id",
    "post-tempolor-music-song",
    "post-tempolor-music-instrumental",
    "post-tempolor-music-stems-splitter",
    "get-tempolor-music",
    "get-tempolor-music-job_id",
    "delete-tempolor-music-job_id",
    "get-tempolor-music-download-job_id",
    "get-tempolor-music-artist-voices",
    "get-tempolor-music-cloned-voices",
    "post-tempolor-music-cloned-voices",
    "delete-tempolor-music-cloned-voices-clonedVoiceItemId",
    "get-tempolor-music-midi",
    "post-tempolor-music-midi",
    "delete-tempolor-music-midi-midiItemId",
    "get-tempolor-scheduler",
    "get-tempolor-scheduler-available",
    "del-tempolor-scheduler-job_id",
}
# What each resource method calls.
ENDPOINTS = {
    "Accounts.list": "get-tempolor-accounts",
    "Accounts.get": "get-tempolor-accounts-user_id",
    "Accounts.create": "post-tempolor-accounts",
    "Accounts.delete": "del-tempolor-accounts-user_id",
    "Music.create_song": "post-tempolor-music-song",
    "Music.create_instrumental": "post-tempolor-music-instrumental",
    "Music.get": "get-tempolor-music-job_id",
    "Music.list": "get-tempolor-music",
    "Music.delete": "delete-tempolor-music-job_id",
    "Music.download_url": "get-tempolor-music-download-job_id",
    "Music.download": "get-tempolor-music-download-job_id",
    "Music.split_stems": "post-tempolor-music-stems-splitter",
    "Voices.list_artist": "get-tempolor-music-artist-voices",
    "Voices.list_cloned": "get-tempolor-music-cloned-voices",
    "Voices.clone": "post-tempolor-music-cloned-voices",
    "Voices.delete_cloned": "delete-tempolor-music-cloned-voices-clonedVoiceItemId",
    "Midi.list": "get-tempolor-music-midi",
    "Midi.upload": "post-tempolor-music-midi",
    "Midi.delete": "delete-tempolor-music-midi-midiItemId",
    "Scheduler.list": "get-tempolor-scheduler",
    "Scheduler.available": "get-tempolor-scheduler-available",
    "Scheduler.cancel": "del-tempolor-scheduler-job_id",
}


def public_methods(cls: type) -> dict[str, object]:
    return {
        name: member
        for name, member in vars(cls).items()
        if not name.startswith("_") and inspect.isfunction(member)
    }


def test_every_constructor_option_is_documented_in_the_class_docstring() -> None:
    doc = inspect.getdoc(TempolorClient) or ""
    options = list(inspect.signature(TempolorClient.__init__).parameters)[1:]
    assert options, "no options?"
    missing = [name for name in options if f"``{name}``:" not in doc]
    assert missing == []
    assert "USEAPI_TOKEN" in doc
    assert "TEMPOLOR_BASE_URL" in doc


def test_every_resource_attribute_is_documented_in_the_class_docstring() -> None:
    doc = inspect.getdoc(TempolorClient) or ""
    client = TempolorClient("a-token-for-docs", base_url="http://127.0.0.1:9")
    resources = [name for name, value in vars(client).items() if isinstance(value, Resource)]
    assert sorted(resources) == ["accounts", "midi", "music", "scheduler", "voices"]
    assert [name for name in resources if f"``{name}``:" not in doc] == []


@pytest.mark.parametrize("cls", [Accounts, Music, Voices, Midi, Scheduler])
def test_every_resource_method_says_what_it_does_and_links_its_page(cls: type) -> None:
    assert inspect.getdoc(cls), cls
    for name, method in public_methods(cls).items():
        doc = inspect.getdoc(method) or ""
        page = ENDPOINTS.get(f"{cls.__name__}.{name}")
        assert page is not None, f"{cls.__name__}.{name} is new: add it to ENDPOINTS"
        assert f"{DOCS}{page}" in doc, f"{cls.__name__}.{name} does not link {page}"
        assert len(doc.replace(f"{DOCS}{page}", "").split()) >= 4, f"{cls.__name__}.{name}"


def test_every_public_client_method_has_a_docstring_with_a_link() -> None:
    for name, method in public_methods(TempolorClient).items():
        doc = inspect.getdoc(method) or ""
        links = re.findall(re.escape(DOCS) + r"([\w-]+)", doc)
        assert links, f"TempolorClient.{name} links no endpoint page"
        assert set(links) <= PAGES, (name, links)


def test_the_license_is_the_mit_text_the_metadata_names() -> None:
    metadata = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^license = "MIT"$', metadata, re.MULTILINE)
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n\nCopyright (c) 2026 tempolor-async developers\n")
    assert "Permission is hereby granted, free of charge" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text
