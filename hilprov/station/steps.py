"""The names of the flow's steps, in order: what `--until` accepts and records name.

Kept apart from `hilprov.station.flow` so that building the command line imports no flow (the
flow checks at import that its STEPS carry exactly these names)."""

STEP_NAMES: tuple[str, ...] = (
    "check-config", "flash-initial", "wait-ready", "read-endpoint", "build-blob", "upload",
    "read-result", "onboard", "flash-final", "wait-restored", "wait-registered",
)
