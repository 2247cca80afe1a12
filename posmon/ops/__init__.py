"""Operator tools run beside (never together with) the daemon: ``posmon verify`` and ``posmon protect``.

``gaps`` compares posmon's store with the exchange (pure), ``plan`` turns the gaps into a repair plan
(pure), ``protect`` carries a plan out through the order gateway, ``report`` renders both for people
and for machines, ``command`` is what the CLI calls, ``lock`` tells whether a daemon holds the store.
"""
