"""The ``currlearn-train`` application, apart from the library.

The library (``currlearn``, ``currlearn.integrations``) never imports this package. It holds:

- :mod:`currlearn.app.cli`: the command line (``currlearn-train``, ``python -m currlearn.app``):
  Hydra's entry point, ``--version``, bad input condensed to one line;
- :mod:`currlearn.app.settings`: the composed config as a plain dict, the top-level settings
  checked, a resumed run's settings merged;
- :mod:`currlearn.app.build`: the curriculum, env, logger and trainer, each instantiated from
  its config node (env and curriculum configs name their own ``_target_``);
- :mod:`currlearn.app.hooks`: the loop's side jobs as TorchRL trainer hooks (episode
  statistics, metrics CSV, checkpoints, progress bar, stop on Ctrl-C);
- :mod:`currlearn.app.checkpoint`, :mod:`currlearn.app.evaluate`, :mod:`currlearn.app.run`;
- :mod:`currlearn.app.report`: ``currlearn-report`` over a multirun directory.
"""
