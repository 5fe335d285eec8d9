"""Every query the app, the worker and the CLI make: the one place SQL lives.

Each function takes a Session first. Writes commit their own short transaction (a label click or a
heartbeat must be durable at once) unless called with ``commit=False``, which lets a caller compose
several writes into one transaction -- `import_examples` does that so an import lands whole or not at all.
The queries live by concern in `storage.datasets`, `storage.examples`, `storage.split_queries`,
`storage.label_stats`, `storage.labeling`, `storage.jobs` and `storage.job_records` (with `storage.leases`);
label values per problem are encoded in `storage.label_values`; this module re-exports them, so callers only ever
import `repo`.
"""

# ruff: noqa: F401, F403  (re-exports: repo is the one import for every query)
from storage.datasets import *
from storage.examples import *
from storage.examples import _check_example
from storage.job_records import *
from storage.jobs import *
from storage.label_stats import *
from storage.label_values import *
from storage.labeling import *
from storage.leases import *
from storage.split_queries import *
