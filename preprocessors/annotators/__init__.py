"""The models that turn source frames into control data: flow backends (RAFT, DIS), depth, canny,
and the hard-cut evidence taken on the same frames."""
