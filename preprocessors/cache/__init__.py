"""The content-addressed cache (entries, locks, eviction, rendered guides) and the on-disk row store
it keeps flows and depth maps in."""
