"""hilprov's benchmark (`python -m bench`) and soak run (`python bench/soak.py`).

Everything runs against the virtual board (hilprov.sim) and the local Coiote server, so the
numbers are reproducible on any machine; see bench/README.md.
"""
