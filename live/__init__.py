"""Live mode: camera frames -> latest-frame queue -> inference worker -> sinks."""
