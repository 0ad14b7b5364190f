"""The training layer every trainer stands on (torch; imports no method): run-level recipe keys,
optimisers and schedules, :class:`~.trainer.Trainer`, the loop (:func:`~.loop.fit`),
checkpoints, run folders and what the commands share. See ``docs/architecture.md``."""
