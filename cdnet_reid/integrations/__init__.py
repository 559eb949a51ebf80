"""Using our models inside other tools (trackers: :mod:`.boxmot`)."""
