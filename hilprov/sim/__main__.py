"""``python -m hilprov.sim``: run a virtual board on a pty (see :mod:`hilprov.sim.runner`)."""

from hilprov.sim.runner import sim_main

if __name__ == "__main__":
    raise SystemExit(sim_main())
