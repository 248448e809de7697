"""Postfix's own formats: main.cf (maincf), qshape; readers and writers only, no model."""
