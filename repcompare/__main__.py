"""``python -m repcompare`` works like the ``repcompare`` console script."""

from repcompare.cli import run

run()
