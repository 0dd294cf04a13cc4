"""The robot: what it reads, its rules and decision, the pass that writes, replay, bands, alerts."""
