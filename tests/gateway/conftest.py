"""Gateway contract tests: the catalog fixture for the mirror scenarios."""

from tests.support.billing import catalog  # noqa: F401 (fixture)
