from tests.support.billing import *  # noqa: F403
