"""Finding, recognising and renaming annotator weights (RAFT, Depth Anything) — never downloading."""
