"""hcflask: a local HammerCloud in one Flask process."""
__version__ = "0.1.0"
