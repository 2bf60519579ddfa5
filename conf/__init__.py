"""currlearn's Hydra config tree (``pkg://currlearn.conf``): train.yaml and its groups."""
