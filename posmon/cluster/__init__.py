"""Active-standby failover on a shared PostgreSQL store (issue 17): leases with fencing tokens per account.

- ``settings``: the ``[cluster]`` section (instance name, lease and renewal periods), validated.
- ``schema``: the ``leases`` and ``instances`` tables (a store migration; SQLite gets them too, unused).
- ``leases``: the SQL of a lease (acquire, renew, release, the fence) and ``ClusterNode``, which registers the
  instance, waits for each account's lease, runs the account while it holds it and stops it when it is lost.
- ``accounts``: ``[accounts.<name>]`` (each account's venue and credentials, merged over the venue's table), or one
  account per venue; what leases are per, and the opener that names the venue after its account.
- ``run``: ``posmon run`` in a cluster: each held account's daemon, at most a fair share per instance.
- ``status``: ``posmon cluster status``.
"""
