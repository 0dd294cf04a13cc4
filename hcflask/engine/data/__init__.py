"""What the engine keeps of history: the rollups and retention."""
