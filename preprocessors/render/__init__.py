"""Control data → guide pixels and files: flow colouring, the burst-proof clip scale, depth brightness,
and the raw-export file formats."""
