"""Postfix's own formats, readers and writers only, no model: main.cf (maincf), qshape,
postqueue -j (postqueue), the mail log (maillog), postfix_exporter metrics (exporter), output
checks (files)."""
