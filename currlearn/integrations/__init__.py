"""Adapters to training frameworks; each imports its framework, so import them explicitly:
``currlearn.integrations.torchrl``, ``currlearn.integrations.lightning``.
"""
