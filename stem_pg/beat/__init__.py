"""The beat process: turns due schedule entries into jobs."""
