"""Hydra sweeper plugin of currlearn: the basic sweeper, checking every job before the first."""
