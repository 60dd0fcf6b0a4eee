"""The service's web layer: the app factory (:mod:`.app`), the HTTP API (:mod:`.api`), the public
unsubscribe, preference and tracking endpoints (:mod:`.public`). Routes validate input and call
the same operations the CLI calls; no SQL lives here."""
