"""What every domain object is built with: the settings, the database, the hub and the clock."""

from __future__ import annotations

from dataclasses import dataclass

from .clock import Clock
from .config import Config
from .hub import Hub
from .protocol import Validator
from .storage import Storage


@dataclass(frozen=True)
class Context:
    """Handed to each domain object with its peers; nothing here is a global."""

    config: Config
    storage: Storage
    hub: Hub
    clock: Clock
    #: Field checks with the configured limits, shared by every subject that checks input.
    validate: Validator
