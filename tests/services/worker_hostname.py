"""Airflow's ``[core] hostname_callable`` for the test deployment's Celery workers.

Both workers run on this one machine, so the default (the machine's FQDN) would record the same hostname for
every task instance. Each worker gets ``AMML_TEST_WORKER`` (``worker1``, ``worker2``) in its environment and
this callable as its hostname, so a task instance's ``hostname`` in the REST API names the worker that ran it.
(Imported by Airflow in every task process: keep it free of heavy imports.)
"""

import os
import socket


def hostname() -> str:
    """``worker1.<fqdn>`` in worker 1's processes; the plain FQDN where no worker name is set."""
    name = os.environ.get("AMML_TEST_WORKER")
    fqdn = socket.getfqdn()
    return f"{name}.{fqdn}" if name else fqdn
