"""Bulk campaigns: mailing lists and their contacts (audiences), campaigns, their fan-out and
the per-recipient ledger.

- :mod:`~mailroom.campaigns.lists`: mailing lists and their contacts, what the CLI and the API
  call;
- :mod:`~mailroom.campaigns.contacts`: what a contact holds, its checks, and how a change is
  merged into it;
- :mod:`~mailroom.campaigns.contacts_csv`: reading a CSV file of contacts, every rejected row
  named;
- :mod:`~mailroom.campaigns.contacts_import`: writing such a file into a list in batches.
"""
