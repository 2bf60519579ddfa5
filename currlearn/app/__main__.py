"""``python -m currlearn.app``: the ``currlearn-train`` command."""

from __future__ import annotations

from currlearn.app.cli import main

if __name__ == "__main__":
    main()
