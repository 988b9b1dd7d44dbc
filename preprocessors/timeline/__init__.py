"""Which source frame (or moment) feeds each guide frame: frame plans, presentation time, segment
windows, motion resampled from the source's timeline to the guide's. Pure functions, no I/O."""
