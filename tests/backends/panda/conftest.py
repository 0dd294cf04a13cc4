"""The real PanDA server fixtures (tests/panda_server/) for the panda tests."""
from tests.panda_server.fixture import panda, panda_server

__all__ = ["panda", "panda_server"]
