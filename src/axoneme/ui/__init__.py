"""The web UI (``axoneme ui``): a live service map, flows table and health alerts."""
