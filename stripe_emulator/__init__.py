"""A stateful, in-memory Stripe API emulator for development, tests and benchmarks.

Run it with ``python -m stripe_emulator --port 12111``; see README.md in this folder.
It must never be imported by ``app/``, ``tasks/`` or ``models/``.
"""

from .engine import Engine
from .objects import API_VERSION
from .operations import OPERATIONS, Operation

__all__ = ["API_VERSION", "OPERATIONS", "Engine", "Operation"]
