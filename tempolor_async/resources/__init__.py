"""The API's resources, one thin class each: a method is a path, a body and a model."""

from .accounts import Accounts
from .midi import Midi
from .music import Music
from .scheduler import Scheduler
from .voices import Voices

__all__ = ["Accounts", "Midi", "Music", "Scheduler", "Voices"]
