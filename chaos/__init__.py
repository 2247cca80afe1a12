"""``make chaos``: a seeded, randomized campaign against the real daemon, proving nothing is lost or doubled.

Each run serves one of the two protocol simulators (Aster or Lighter) on loopback inside this process, starts
``posmon run`` as its own process on a fresh store, trades the same account as "another program" (entries on
both sides, marks through TPs and SLs, venue-side exits, positions changed with no order update or with no frame
at all, liquidations and ADL), injects faults (SIGKILL and restart on the same store, 5xx after execution,
429/418, timeouts, websocket drops and stalls, listen-key expiry, Lighter nonce errors), lets it settle and
checks the invariants in ``chaos.invariants``. ``python -m chaos --help``.
"""
