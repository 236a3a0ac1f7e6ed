"""FusionRec core: shared types, configuration, environment and the `fusionrec` CLI."""

__version__ = "0.1.0"
