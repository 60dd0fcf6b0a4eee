"""Composing messages: templates (sandboxed Jinja2), html→text, CSS inlining, snippets,
deep links and footers. Each module does one of these."""
