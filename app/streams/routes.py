from __future__ import annotations

from flask import Blueprint

bp = Blueprint("streams", __name__)
