"""The cloud side: the Coiote DM v3 REST client."""
