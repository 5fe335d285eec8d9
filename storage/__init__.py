"""Finetuner's data: datasets, examples, labels and jobs in SQLite (or any SQLAlchemy database). No torch.

Entry points: `storage.db.open_db` for a session factory, `storage.repo` for every query,
`storage.io` for reading and writing files.
"""
