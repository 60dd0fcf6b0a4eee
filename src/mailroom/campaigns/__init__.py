"""Bulk campaigns: one message composed once and sent to a mailing list or an application's
audience, through a per-recipient ledger that lets nobody get it twice.

- :mod:`~mailroom.campaigns.lists`: mailing lists and their contacts, what the CLI and the API
  call; :mod:`~mailroom.campaigns.contacts`: what a contact holds, its checks, and how a change
  is merged into it; :mod:`~mailroom.campaigns.contacts_csv` and
  :mod:`~mailroom.campaigns.contacts_import`: a CSV file of contacts read (every rejected row
  named) and written into a list in batches;
- :mod:`~mailroom.campaigns.store`: create, edit, duplicate, schedule and start a campaign;
- :mod:`~mailroom.campaigns.audiences`: who a campaign goes to, paged by a stable key;
- :mod:`~mailroom.campaigns.fanout`: the audience into the ledger, with a saved checkpoint;
- :mod:`~mailroom.campaigns.batches`: pending recipients composed and queued, a batch at a time;
- :mod:`~mailroom.campaigns.control`: pause, resume, cancel, retry the failed;
- :mod:`~mailroom.campaigns.progress`: counts derived from the ledger and the messages;
- :mod:`~mailroom.campaigns.runner`: the step a worker (or a Celery task) takes.
"""
