"""A real PanDA server for the tests: see server.py."""
