"""Core: LwM2M names, safe parsing of endpoint configs, validation, SenML CBOR, certificates and
the provisioning plan. Reads its inputs; no board, cloud or station I/O."""
