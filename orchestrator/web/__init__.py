"""The HTTP side: callbacks, health, the job API; served by waitress inside the daemon."""
