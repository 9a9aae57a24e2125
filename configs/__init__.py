"""YAML presets shipped with spikerl (one file per experiment)."""
