"""The station: the provisioning flow as steps over a board, a plan and a cloud; many boards at
once; the device records."""
