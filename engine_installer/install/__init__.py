"""From plan to disk: prepare() decides everything (pure), the runner executes the action list
through the disk writers, and the upgrade report says what the technician must do next."""
