"""Benchmarks of the real posmon daemon against the Aster-protocol simulator over loopback.

``python -m bench`` runs the full benchmark, ``python -m bench --smoke`` a seconds-long version; see
``bench/README.md`` for what each figure means and how it is measured.
"""
