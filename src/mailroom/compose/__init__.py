"""Composing messages: templates (sandboxed Jinja2), html→text, CSS inlining, snippets,
deep links, footers, headers (List-Unsubscribe, type, prefix, sender identity), and
``personalize``, which puts them together into one recipient's message. Each module does one
of these."""
