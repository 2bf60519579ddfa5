"""currlearn's Hydra config tree, installed as ``pkg://currlearn.conf``: ``train.yaml`` and its groups."""
