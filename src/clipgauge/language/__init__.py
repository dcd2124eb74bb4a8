"""Prompt languages: identification per distinct prompt (:mod:`.detect`)."""
